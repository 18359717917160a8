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

// A cpu_limit above the machine's CPUs is kept, with a warning for the hub's log,
// because it is most likely upstream's old percent value.
func TestCPULimitAboveMachineWarns(t *testing.T) {
	s, _, _ := newTestService(t)
	s.numCPU = func() int { return 2 }
	req := startRequest("alice")
	req.CPULimit = ptr(50.0)
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "cpu_limit 50 is more than the 2 CPUs") {
		t.Errorf("warnings = %q", st.Warnings)
	}
	req = startRequest("bob")
	req.CPULimit = ptr(1.5)
	if st, _ := s.Start(context.Background(), req); len(st.Warnings) != 0 {
		t.Errorf("warnings for 1.5 CPUs = %q", st.Warnings)
	}
}
