package unitname

import (
	"strings"
	"testing"
)

func TestForServerKeepsUpstreamDefault(t *testing.T) {
	got, err := ForServer("", Vars{UserName: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got != "jupyter-alice-singleuser.service" {
		t.Errorf("got %q, want jupyter-alice-singleuser.service", got)
	}
}

func TestForServerEscapesRealUserNames(t *testing.T) {
	cases := map[string]string{
		`dom\dd`:            `jupyter-dom\x5cdd-singleuser.service`,
		"john doe":          `jupyter-john\x20doe-singleuser.service`,
		"ann@example.org":   `jupyter-ann\x40example.org-singleuser.service`,
		"élodie":            `jupyter-\xc3\xa9lodie-singleuser.service`,
		".hidden":           `jupyter-\x2ehidden-singleuser.service`,
		"a:b":               `jupyter-a\x3ab-singleuser.service`,
		"x/../../etc/shado": `jupyter-x\x2f..\x2f..\x2fetc\x2fshado-singleuser.service`,
	}
	for user, want := range cases {
		got, err := ForServer(DefaultTemplate, Vars{UserName: user})
		if err != nil {
			t.Errorf("user %q: %v", user, err)
			continue
		}
		if got != want {
			t.Errorf("user %q: got %q, want %q", user, got, want)
		}
		if err := Validate(got); err != nil {
			t.Errorf("user %q: result is invalid: %v", user, err)
		}
	}
}

func TestForServerNamedServersDistinct(t *testing.T) {
	pairs := []Vars{
		{UserName: "a-b", ServerName: ""},
		{UserName: "a", ServerName: "b"},
		{UserName: "a", ServerName: "b-singleuser"},
		{UserName: "a-singleuser:b", ServerName: ""},
		{UserName: "a", ServerName: ""},
		{UserName: "a", ServerName: "gpu"},
		{UserName: "a:gpu", ServerName: ""},
	}
	seen := map[string]Vars{}
	for _, vars := range pairs {
		got, err := ForServer(DefaultTemplate, vars)
		if err != nil {
			t.Fatalf("%+v: %v", vars, err)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%+v and %+v both map to %q", vars, other, got)
		}
		seen[got] = vars
	}
	got, _ := ForServer(DefaultTemplate, Vars{UserName: "alice", ServerName: "gpu"})
	if got != "jupyter-alice-singleuser:gpu.service" {
		t.Errorf("named server: got %q", got)
	}
}

func TestForServerShortensLongNames(t *testing.T) {
	long1 := strings.Repeat("é", 200) + "1"
	long2 := strings.Repeat("é", 200) + "2"
	a, err := ForServer(DefaultTemplate, Vars{UserName: long1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ForServer(DefaultTemplate, Vars{UserName: long2})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) > maxCreatedLength || len(b) > maxCreatedLength {
		t.Errorf("lengths %d and %d exceed %d", len(a), len(b), maxCreatedLength)
	}
	if a == b {
		t.Errorf("two long names map to the same unit %q", a)
	}
	again, _ := ForServer(DefaultTemplate, Vars{UserName: long1})
	if again != a {
		t.Errorf("not deterministic: %q then %q", a, again)
	}
	if err := Validate(a); err != nil {
		t.Error(err)
	}
}

func TestForServerTemplateVariables(t *testing.T) {
	got, err := ForServer("jhub-{USERID}-{USERNAME}-{SERVERNAME}", Vars{UserName: "bob", UserID: "1001", ServerName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got != "jhub-1001-bob-x.service" {
		t.Errorf("got %q", got)
	}
	if _, err := ForServer("jupyter {USERNAME}", Vars{UserName: "bob"}); err == nil {
		t.Error("a template with a space gave no error")
	}
	if _, err := ForServer("{literal}-{USERNAME}", Vars{UserName: "bob"}); err == nil {
		t.Error("a template with literal braces gave no error")
	}
}

func TestValidateRejects(t *testing.T) {
	for _, name := range []string{"", ".service", "a b.service", "a@b.service", "a.socket", strings.Repeat("a", 250) + ".service"} {
		if Validate(name) == nil {
			t.Errorf("Validate(%q) = nil, want an error", name)
		}
	}
}

func TestForServerShortenedNeverMatchesPlain(t *testing.T) {
	long := strings.Repeat("a", 300)
	shortened, err := ForServer(DefaultTemplate, Vars{UserName: long})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shortened, `\h`) {
		t.Fatalf("shortened name %q has no hash mark", shortened)
	}
	// A user whose name is the shortened form, written out, gets another unit, because
	// Escape turns the backslash into \x5c.
	imitation := strings.TrimSuffix(strings.TrimPrefix(shortened, "jupyter-"), "-singleuser.service")
	other, err := ForServer(DefaultTemplate, Vars{UserName: imitation})
	if err != nil {
		t.Fatal(err)
	}
	if other == shortened {
		t.Errorf("the user %q gets the unit of the shortened name", imitation)
	}
}

func TestExpandBraces(t *testing.T) {
	vars := Vars{UserName: "alice", UserID: "7", ServerName: "gpu"}
	cases := map[string]string{
		"/home/{USERNAME}":      "/home/alice",
		"{USERID}-{SERVERNAME}": "7-gpu",
		"{{USERNAME}}":          "{USERNAME}",
		"{{{USERNAME}}}":        "{alice}",
		`{"a": 1}`:              `{"a": 1}`,
		"{literal}-{USERNAME}":  "{literal}-alice",
		"{":                     "{",
		"}":                     "}",
		"{USERNAME":             "{USERNAME",
		"x{{y}}z":               "x{y}z",
		"{unknown{USERNAME}}":   "{unknownalice}",
	}
	for template, want := range cases {
		if got := Expand(template, vars, func(s string) string { return s }); got != want {
			t.Errorf("Expand(%q) = %q, want %q", template, got, want)
		}
	}
}

func TestDynamicUserName(t *testing.T) {
	seen := map[string]string{}
	for _, user := range []string{"alice", "Alice", "ann@example.org", "..", "", strings.Repeat("x", 100), "日本"} {
		name := DynamicUserName(user)
		if len(name) > maxUserNameLength || !strings.HasPrefix(name, "jh-") {
			t.Errorf("DynamicUserName(%q) = %q", user, name)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				t.Errorf("DynamicUserName(%q) = %q contains %q", user, name, r)
			}
		}
		if other, ok := seen[name]; ok {
			t.Errorf("%q and %q share %q", user, other, name)
		}
		seen[name] = user
	}
}

// A unit name must leave room for its PrivateTmp= directory's name: 199 bytes at most.
func TestForServerLengthLimit(t *testing.T) {
	if maxCreatedLength != 199 {
		t.Fatalf("maxCreatedLength = %d, want 199", maxCreatedLength)
	}
	for _, n := range []int{1, 150, 182, 183, 184, 250} {
		name, err := ForServer("u{USERNAME}", Vars{UserName: strings.Repeat("z", n)})
		if err != nil {
			t.Fatal(err)
		}
		privateTmp := "systemd-private-" + strings.Repeat("0", 32) + "-" + name + "-XXXXXX"
		if len(name) > 199 || len(privateTmp) > 255 {
			t.Errorf("user of %d bytes: unit %d bytes, PrivateTmp directory %d bytes", n, len(name), len(privateTmp))
		}
		if shortened := strings.Contains(name, hashMark); shortened != (n+1+len(Suffix) > 199) {
			t.Errorf("user of %d bytes: unit %q shortened = %v", n, name, shortened)
		}
	}
}
