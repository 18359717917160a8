package systemd

import (
	"math"
	"reflect"
	"testing"
)

func TestParseValue(t *testing.T) {
	cases := []struct {
		name, signature string
		values          []string
		want            any
	}{
		{"PrivateNetwork", "b", []string{"yes"}, true},
		{"PrivateNetwork", "b", []string{"off"}, false},
		{"ProtectSystem", "s", []string{"strict"}, "strict"},
		{"CPUWeight", "t", []string{"50"}, uint64(50)},
		{"TasksMax", "t", []string{"infinity"}, uint64(math.MaxUint64)},
		{"MemoryHigh", "t", []string{"1.5G"}, uint64(1610612736)},
		{"MemoryMax", "t", []string{"512M"}, uint64(536870912)},
		{"TimeoutStopUSec", "t", []string{"30"}, uint64(30e6)},
		{"TimeoutStopUSec", "t", []string{"1min 30s"}, uint64(90e6)},
		{"RuntimeMaxUSec", "t", []string{"500ms"}, uint64(500e3)},
		{"CPUQuotaPerSecUSec", "t", []string{"50%"}, uint64(500000)},
		{"CPUQuotaPerSecUSec", "t", []string{"250%"}, uint64(2500000)},
		{"Nice", "i", []string{"5"}, int32(5)},
		{"UMask", "u", []string{"18"}, uint32(18)},
		{"ReadOnlyPaths", "as", []string{"/a", "/b c"}, []string{"/a", "/b c"}},
		{"BindReadOnlyPaths", "a(ssbt)", []string{"/srv/data", "-/opt/x:/x:norbind"}, []bindPath{
			{Source: "/srv/data", Destination: "/srv/data", MountFlags: msRec},
			{Source: "/opt/x", Destination: "/x", IgnoreMissing: true},
		}},
	}
	for _, tc := range cases {
		got, err := ParseValue(tc.name, tc.signature, tc.values)
		if err != nil {
			t.Errorf("%s=%q: %v", tc.name, tc.values, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s=%q: got %#v, want %#v", tc.name, tc.values, got, tc.want)
		}
	}
}

func TestParseValueRejects(t *testing.T) {
	cases := []struct {
		name, signature string
		values          []string
	}{
		{"PrivateNetwork", "b", []string{"maybe"}},
		{"CPUWeight", "t", []string{"-1"}},
		{"CPUWeight", "t", []string{"1", "2"}},
		{"MemoryHigh", "t", []string{"lots"}},
		{"TimeoutStopUSec", "t", []string{"5 fortnights"}},
		{"CPUQuotaPerSecUSec", "t", []string{"-5%"}},
		{"Nice", "i", []string{"x"}},
		{"UMask", "q", []string{"70000"}},
		{"BindPaths", "a(ssbt)", []string{"relative:/b"}},
		{"BindPaths", "a(ssbt)", []string{"/a:/b:sideways"}},
		{"IPAddressDeny", "a(iayu)", []string{"any"}},
	}
	for _, tc := range cases {
		if got, err := ParseValue(tc.name, tc.signature, tc.values); err == nil {
			t.Errorf("%s=%q: got %#v, want an error", tc.name, tc.values, got)
		}
	}
}

func TestResolveName(t *testing.T) {
	types := map[string]string{"TimeoutStopUSec": "t", "CPUWeight": "t", "CPUQuotaPerSecUSec": "t"}
	cases := map[string]string{
		"TimeoutStopSec":  "TimeoutStopUSec",
		"TimeoutStopUSec": "TimeoutStopUSec",
		"CPUWeight":       "CPUWeight",
		"CPUQuota":        "CPUQuotaPerSecUSec",
	}
	for written, want := range cases {
		got, ok := ResolveName(written, types)
		if !ok || got != want {
			t.Errorf("ResolveName(%s) = %s, %v; want %s", written, got, ok, want)
		}
	}
	if _, ok := ResolveName("NoSuchThing", types); ok {
		t.Error("an unknown name resolved")
	}
}

func TestParsePropertyTypes(t *testing.T) {
	data := `<node>
 <interface name="org.freedesktop.systemd1.Service">
  <property name="CPUWeight" type="t" access="read"/>
  <property name="ReadOnlyPaths" type="as" access="read"/>
 </interface>
 <interface name="org.freedesktop.DBus.Peer"><property name="Ignored" type="s" access="read"/></interface>
</node>`
	types, err := parsePropertyTypes(data)
	if err != nil {
		t.Fatal(err)
	}
	if types["CPUWeight"] != "t" || types["ReadOnlyPaths"] != "as" || len(types) != 2 {
		t.Errorf("types = %v", types)
	}
}

func TestBusEscapeRoundTrip(t *testing.T) {
	for _, name := range []string{"jupyter-alice-singleuser.service", `jupyter-ann\x40example.org-singleuser:gpu.service`, "0start.service", "a_b.service"} {
		escaped := busEscape(name)
		if got := busUnescape(escaped); got != name {
			t.Errorf("busUnescape(busEscape(%q)) = %q (escaped %q)", name, got, escaped)
		}
	}
	if got := busEscape("jupyter-a.service"); got != "jupyter_2da_2eservice" {
		t.Errorf("busEscape = %q, want systemd's jupyter_2da_2eservice", got)
	}
}
