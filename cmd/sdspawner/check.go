package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sdspawner/sdspawner/internal/check"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// errCheckFailed makes main exit with status 1 after the report is printed.
var errCheckFailed = errors.New("limits are not enforced or systemd is not suitable; see the report above")

func runCheck(args []string) error {
	flags := flag.NewFlagSet("check", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "print the report as JSON")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if os.Geteuid() != 0 {
		// systemd would reject the probe unit, and the verdict would wrongly be that
		// limits are not enforced.
		return errors.New("run it as root (sudo sdspawner check): the check starts a short-lived probe unit, which only root may do")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	report, err := check.Run(ctx, conn)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printReport(report)
	}
	if !report.OK {
		return errCheckFailed
	}
	return nil
}

func printReport(r check.Report) {
	verdict := "NOT enforced"
	if r.Enforced {
		verdict = "enforced"
	}
	fmt.Printf("systemd:      %s\n", r.SystemdVersion)
	fmt.Printf("cgroups:      %s, controllers: %s\n", r.CgroupMode, strings.Join(r.Controllers, " "))
	if len(r.KernelConfig) > 0 {
		fmt.Printf("kernel:       %s\n", strings.Join(r.KernelConfig, " "))
	}
	fmt.Printf("memory limit: %v\n", yesNo(r.MemoryEnforced))
	fmt.Printf("CPU limit:    %v\n", yesNo(r.CPUEnforced))
	fmt.Printf("verdict:      limits are %s here\n", verdict)
	for _, problem := range r.Problems {
		fmt.Printf("problem:      %s\n", problem)
	}
	for _, note := range r.Notes {
		fmt.Printf("note:         %s\n", note)
	}
	if !r.Enforced {
		fmt.Println("next step:    see \"Limits are not enforced\" in docs/troubleshooting.md")
	}
}

func yesNo(enforced bool) string {
	if enforced {
		return "enforced"
	}
	return "NOT enforced"
}
