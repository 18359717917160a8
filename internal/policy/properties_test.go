package policy

import (
	"strings"
	"testing"
)

func TestNeverAllowedEveryEntry(t *testing.T) {
	cfg := Default()
	// Even an allow-list naming every entry cannot let these through.
	for pattern := range neverAllowed {
		cfg.Properties.Allow = append(cfg.Properties.Allow, strings.TrimSuffix(pattern, "*")+"X")
	}
	for pattern := range neverAllowed {
		name := strings.TrimSuffix(pattern, "*") + "X"
		if !strings.HasSuffix(pattern, "*") {
			name = pattern
			cfg.Properties.Allow = append(cfg.Properties.Allow, name)
		}
		err := cfg.CheckExtraProperty(name, name, []string{"x"})
		if err == nil || !strings.Contains(err.Error(), "may not be set from the hub") {
			t.Errorf("%s: %v, want never allowed", name, err)
		}
	}
	for _, name := range []string{"ExecStartPre", "ExecStopPost", "StandardOutput", "LoadCredentialEncrypted", "DelegateSubgroup", "RootImageOptions"} {
		if err := cfg.CheckExtraProperty(name, name, []string{"x"}); err == nil {
			t.Errorf("%s matched no never-allowed prefix", name)
		}
	}
}

func TestDefaultAllowedEveryEntry(t *testing.T) {
	cfg := Default()
	for _, name := range DefaultAllowedProperties {
		if reason := neverAllowedReason(name); reason != "" {
			t.Errorf("%s is on both lists", name)
		}
		if err := cfg.CheckExtraProperty(name, name, []string{"1"}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExtraPropertyValueRules(t *testing.T) {
	cfg := Default()
	rejected := map[string]string{
		"NoNewPrivileges": "no",
		"Nice":            "-5",
		"OOMScoreAdjust":  "-1000",
	}
	for name, value := range rejected {
		if err := cfg.CheckExtraProperty(name, name, []string{value}); err == nil {
			t.Errorf("%s=%s allowed", name, value)
		}
	}
	for name, value := range map[string]string{"NoNewPrivileges": "yes", "Nice": "5", "OOMScoreAdjust": "500"} {
		if err := cfg.CheckExtraProperty(name, name, []string{value}); err != nil {
			t.Errorf("%s=%s: %v", name, value, err)
		}
	}
}

func TestExtraPropertyNotListed(t *testing.T) {
	cfg := Default()
	err := cfg.CheckExtraProperty("IPAddressDeny", "IPAddressDeny", []string{"any"})
	if err == nil || !strings.Contains(err.Error(), "properties.allow") {
		t.Errorf("got %v, want a hint at properties.allow", err)
	}
	cfg.Properties.Allow = []string{"IPAddressDeny"}
	if err := cfg.CheckExtraProperty("IPAddressDeny", "IPAddressDeny", []string{"any"}); err != nil {
		t.Errorf("configured allow-list ignored: %v", err)
	}
}
