package api

import (
	"strings"
	"testing"
)

func TestDecodeStrictRejects(t *testing.T) {
	cases := map[string]string{
		`{"user":"a","user":"b"}`:              `"user" is given twice`,
		`{"user":"a","env":{"X":"1","X":"2"}}`: `"env.X" is given twice`,
		`{"user":"a","usr":"b"}`:               `unknown field "usr"`,
		`{"user":"a"} {"user":"b"}`:            "data after the JSON object",
		`{"user":`:                             "invalid JSON body",
		`[]`:                                   "invalid JSON body",
		`{"mem_limit":"1G","user":"a"}`:        "invalid JSON body",
	}
	for body, want := range cases {
		var req StartRequest
		err := DecodeStrict([]byte(body), &req)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeStrict(%s) = %v, want an error containing %q", body, err, want)
		}
	}
}

func TestDecodeStrictAccepts(t *testing.T) {
	var req StartRequest
	body := `{"user":"a","cmd":["x"],"env":{"A":"1","B":"2"},"extra_paths":["/a","/a"],"mem_limit":null}`
	if err := DecodeStrict([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	if req.User != "a" || req.Env["B"] != "2" || req.MemLimit != nil || len(req.ExtraPaths) != 2 {
		t.Errorf("decoded %+v", req)
	}
}
