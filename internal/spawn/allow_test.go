package spawn

import (
	"context"
	"strings"
	"testing"
)

func TestCheckAllowedProperties(t *testing.T) {
	s, _, _ := newTestService(t)
	s.cfg.Properties.Allow = []string{"CPUWeight", "cpuweight", "CPUWieght"}
	warnings, err := s.CheckAllowedProperties(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 {
		t.Fatalf("warnings = %q, want two", warnings)
	}
	if !strings.Contains(warnings[0], `"CPUWieght" is not a property`) {
		t.Errorf("warning = %q", warnings[0])
	}
	if !strings.Contains(warnings[1], `"cpuweight" allows nothing: property names are case-sensitive; write "CPUWeight"`) {
		t.Errorf("warning = %q", warnings[1])
	}
}
