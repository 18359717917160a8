package logging

import "testing"

func TestFieldName(t *testing.T) {
	cases := map[string]string{
		"user":       "SDSPAWNER_USER",
		"caller_uid": "SDSPAWNER_CALLER_UID",
		"req.id":     "SDSPAWNER_REQ_ID",
		"Ünit":       "SDSPAWNER__NIT",
	}
	for key, want := range cases {
		if got := FieldName(key); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", key, got, want)
		}
	}
}
