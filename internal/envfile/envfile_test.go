package envfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEncodeEscapesShellCharacters(t *testing.T) {
	got, err := Encode(map[string]string{
		"B": `a"b\c$d` + "`e",
		"A": "line1\nline2\ttab",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "A=\"line1\nline2\ttab\"\nB=\"a\\\"b\\\\c\\$d\\`e\"\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEncodeRejectsBadInput(t *testing.T) {
	cases := []map[string]string{
		{"1ABC": "x"},
		{"A-B": "x"},
		{"": "x"},
		{"A": "nul\x00"},
		{"A": "bell\x07"},
		{"A": "\xff\xfe"},
	}
	for _, env := range cases {
		if _, err := Encode(env); err == nil {
			t.Errorf("Encode(%q) gave no error", env)
		}
	}
}

func TestStoreWriteIsRootOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "env")
	store, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %o, want 700", info.Mode().Perm())
	}
	path, err := store.Write(`jupyter-a\x20b-singleuser.service`, map[string]string{"TOKEN": "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "jupyter-a@x20b-singleuser.service.env" {
		t.Errorf("file name %q still contains a glob escape", filepath.Base(path))
	}
	info, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode %o, want 600", info.Mode().Perm())
	}
	units, err := store.Units()
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 || units[0] != `jupyter-a\x20b-singleuser.service` {
		t.Errorf("Units() = %q", units)
	}
	if err := store.Remove(units[0]); err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(units[0]); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("directory not empty after Remove: %v", entries)
	}
}

func TestOpenRejectsSymlink(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := Open(link)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(symlink) = %v, want a not-a-directory error", err)
	}
}
