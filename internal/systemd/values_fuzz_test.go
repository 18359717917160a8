package systemd

import "testing"

// FuzzParseValue checks that parsing never panics and that an accepted value has the
// Go type its D-Bus signature needs.
func FuzzParseValue(f *testing.F) {
	for _, seed := range []struct{ name, signature, value string }{
		{"MemoryMax", "t", "1.5G"},
		{"TimeoutStopUSec", "t", "1min 30s"},
		{"CPUQuotaPerSecUSec", "t", "50%"},
		{"PrivateTmp", "b", "yes"},
		{"Nice", "i", "-5"},
		{"UMask", "u", "18"},
		{"ProtectSystem", "s", "strict"},
	} {
		f.Add(seed.name, seed.signature, seed.value)
	}
	f.Fuzz(func(t *testing.T, name, signature, value string) {
		got, err := ParseValue(name, signature, []string{value})
		if err != nil {
			return
		}
		ok := false
		switch signature {
		case "t":
			_, ok = got.(uint64)
		case "b":
			_, ok = got.(bool)
		case "s":
			_, ok = got.(string)
		case "as":
			_, ok = got.([]string)
		case "i":
			_, ok = got.(int32)
		case "u":
			_, ok = got.(uint32)
		case "x":
			_, ok = got.(int64)
		case "q":
			_, ok = got.(uint16)
		case "n":
			_, ok = got.(int16)
		case "y":
			_, ok = got.(uint8)
		}
		if !ok {
			t.Fatalf("ParseValue(%q, %q, %q) = %#v, the wrong Go type", name, signature, value, got)
		}
	})
}
