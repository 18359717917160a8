package api

import (
	"encoding/json"
	"testing"
)

// typicalStartBody is a start request as JupyterHub 6 sends it, with the environment
// the hub passes to a server.
func typicalStartBody(b *testing.B) []byte {
	b.Helper()
	env := map[string]string{
		"JUPYTERHUB_API_TOKEN":          "a5f1f3c8d1e94b6c9a0e3c2b1d4f5e6a",
		"JUPYTERHUB_CLIENT_ID":          "jupyterhub-user-alice",
		"JUPYTERHUB_API_URL":            "http://127.0.0.1:8081/hub/api",
		"JUPYTERHUB_ACTIVITY_URL":       "http://127.0.0.1:8081/hub/api/users/alice/activity",
		"JUPYTERHUB_BASE_URL":           "/",
		"JUPYTERHUB_HOST":               "",
		"JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/alice/oauth_callback",
		"JUPYTERHUB_OAUTH_SCOPES":       `["access:servers!server=alice/", "access:servers!user=alice"]`,
		"JUPYTERHUB_SERVER_NAME":        "",
		"JUPYTERHUB_SERVICE_PREFIX":     "/user/alice/",
		"JUPYTERHUB_SERVICE_URL":        "http://127.0.0.1:53211/user/alice/",
		"JUPYTERHUB_USER":               "alice",
		"JPY_API_TOKEN":                 "a5f1f3c8d1e94b6c9a0e3c2b1d4f5e6a",
	}
	mem, cpu := int64(2<<30), 1.0
	body, err := json.Marshal(StartRequest{
		User: "alice", Cmd: []string{"jupyterhub-singleuser"}, Env: env, MemLimit: &mem, CPULimit: &cpu,
		UsernameTemplate: "{USERNAME}", UnitNameTemplate: "jupyter-{USERNAME}-singleuser",
		ExtraPaths: []string{"/opt/conda/bin"}, IsolateTmp: true,
		UnitExtraProperties: map[string]any{"CPUWeight": "100", "ReadOnlyPaths": []string{"/srv/data"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func BenchmarkDecodeStrictStart(b *testing.B) {
	body := typicalStartBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req StartRequest
		if err := DecodeStrict(body, &req); err != nil {
			b.Fatal(err)
		}
	}
}
