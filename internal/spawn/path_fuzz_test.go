package spawn

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdspawner/sdspawner/internal/unitname"
)

// FuzzExpandPath checks that a path template expanded with any user and server name
// either fails or gives a clean absolute path. A name that could climb out of the
// directory the admin wrote (one with '/', or "." or "..") must always be rejected when
// the template uses it.
func FuzzExpandPath(f *testing.F) {
	f.Add("/home/{USERNAME}", "alice", "")
	f.Add("/srv/{USERNAME}/{SERVERNAME}", "..", "x")
	f.Add("/srv/{USERNAME}", "a/../../etc", "")
	f.Add("/data/{{USERNAME}}/{USERNAME}", "dom\\dd", "")
	f.Add("/scratch/{USERID}-{USERNAME}", ".", "")
	f.Fuzz(func(t *testing.T, template, user, server string) {
		if !strings.HasPrefix(template, "/") {
			return
		}
		path, err := expandPath("user_workingdir", template, unitname.Vars{UserName: user, ServerName: server, UserID: "7"})
		if err != nil {
			return
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			t.Fatalf("expandPath(%q, %q, %q) = %q, not a clean absolute path", template, user, server, path)
		}
		for name, value := range map[string]string{"USERNAME": user, "SERVERNAME": server} {
			climbs := strings.Contains(value, "/") || value == "." || value == ".."
			if climbs && unitname.Uses(template, name) {
				t.Fatalf("expandPath(%q, %q, %q) = %q accepted the name %q", template, user, server, path, value)
			}
		}
	})
}
