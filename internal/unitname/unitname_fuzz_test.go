package unitname

import "testing"

// FuzzForServer checks that every user and server name gives a valid unit name, the same
// one on every call, and that different pairs never share a unit.
func FuzzForServer(f *testing.F) {
	f.Add("alice", "", "bob", "")
	f.Add("a-b", "", "a", "b")
	f.Add(`dom\dd`, "gpu", "dom", `dd:gpu`)
	f.Add("john doe", "x", "john\\x20doe", "x")
	f.Add(".hidden", "", "\\x2ehidden", "")
	f.Fuzz(func(t *testing.T, user1, server1, user2, server2 string) {
		a, errA := ForServer(DefaultTemplate, Vars{UserName: user1, ServerName: server1})
		b, errB := ForServer(DefaultTemplate, Vars{UserName: user2, ServerName: server2})
		if errA != nil || errB != nil {
			t.Fatalf("the default template failed: %v, %v", errA, errB)
		}
		if err := Validate(a); err != nil {
			t.Fatalf("invalid unit name for %q/%q: %v", user1, server1, err)
		}
		again, _ := ForServer(DefaultTemplate, Vars{UserName: user1, ServerName: server1})
		if again != a {
			t.Fatalf("not deterministic: %q then %q", a, again)
		}
		if a == b && (user1 != user2 || server1 != server2) {
			t.Fatalf("%q/%q and %q/%q share the unit %q", user1, server1, user2, server2, a)
		}
	})
}
