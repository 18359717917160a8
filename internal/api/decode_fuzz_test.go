package api

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeStrict checks that any body either fails to decode or decodes into a
// request that encoding/json reads the same way, and never panics.
func FuzzDecodeStrict(f *testing.F) {
	f.Add([]byte(`{"user":"alice","cmd":["jupyterhub-singleuser"],"env":{"A":"1"},"mem_limit":1073741824}`))
	f.Add([]byte(`{"user":"a","user":"b"}`))
	f.Add([]byte(`{"unit_extra_properties":{"CPUWeight":"50","ReadOnlyPaths":["/a","/b"]}}`))
	f.Add([]byte(`{"env":{"A":"1"},"env":{}}`))
	f.Add([]byte(`[{"user":"x"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var strict StartRequest
		if err := DecodeStrict(body, &strict); err != nil {
			return
		}
		var loose StartRequest
		if err := json.Unmarshal(body, &loose); err != nil {
			t.Fatalf("DecodeStrict accepted a body that encoding/json rejects: %v", err)
		}
		a, _ := json.Marshal(strict)
		b, _ := json.Marshal(loose)
		if string(a) != string(b) {
			t.Fatalf("strict and plain decoding differ:\n%s\n%s", a, b)
		}
	})
}
