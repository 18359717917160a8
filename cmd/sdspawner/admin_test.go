package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional string
		follow     bool
		lines      int
	}{
		{[]string{"alice"}, "alice", false, 100},
		{[]string{"-f", "-n", "5", "alice", "gpu"}, "alice,gpu", true, 5},
		{[]string{"carl@example.com", "-n", "2"}, "carl@example.com", false, 2},
		{[]string{"alice", "-f", "gpu", "-n", "7"}, "alice,gpu", true, 7},
		{[]string{"-n", "3", "--", "-dash-user"}, "-dash-user", false, 3},
	} {
		flags := flag.NewFlagSet("logs", flag.ContinueOnError)
		flags.SetOutput(io.Discard)
		follow := flags.Bool("f", false, "")
		lines := flags.Int("n", 100, "")
		positional, err := parseInterspersed(flags, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Join(positional, ",") != tc.positional || *follow != tc.follow || *lines != tc.lines {
			t.Errorf("%q: positional %q, -f %v, -n %d", tc.args, positional, *follow, *lines)
		}
	}
}

func TestParseInterspersedBadFlag(t *testing.T) {
	flags := flag.NewFlagSet("logs", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.Int("n", 100, "")
	if _, err := parseInterspersed(flags, []string{"alice", "-n", "many"}); err == nil || !strings.Contains(err.Error(), "many") {
		t.Errorf("bad -n value: %v", err)
	}
}
