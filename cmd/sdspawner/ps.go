package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/client"
	"github.com/sdspawner/sdspawner/internal/policy"
)

func runPs(args []string) error {
	flags := flag.NewFlagSet("ps", flag.ContinueOnError)
	socket := flags.String("socket", policy.Default().Socket.Path, "the daemon's API socket")
	asJSON := flags.Bool("json", false, "print JSON instead of a table")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: sdspawner ps [options]\n\nOne line per user server: state, uptime, memory used / limit, CPU, tasks, OOM kills.")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return fmt.Errorf("expected no arguments, got %q", flags.Args())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.New(*socket).List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(list)
	}
	return printServers(os.Stdout, list.Servers)
}

// printServers writes the table of `sdspawner ps`, then the failure reason of each
// failed server.
func printServers(out io.Writer, servers []api.ServerInfo) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tSERVER\tSTATE\tUPTIME\tMEMORY\tCPU%\tCPU TIME\tTASKS\tOOM\tUNIT")
	for _, s := range servers {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			shorten(s.User), shorten(orDash(s.Server)), stateText(s), durationText(s.UptimeSeconds), memoryText(s),
			percentText(s.CPUPercent), durationText(s.CPUSeconds), countText(s.Tasks), countText(s.OOMKills), s.Unit)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range servers {
		if s.Failure == "" {
			continue
		}
		name := s.User
		if s.Server != "" {
			name += "/" + s.Server
		}
		fmt.Fprintf(out, "\n%s: %s\n", name, s.Failure)
	}
	if len(servers) == 0 {
		fmt.Fprintln(out, "(no servers)")
	}
	return nil
}

func stateText(s api.ServerInfo) string {
	switch {
	case s.ActiveState == "active":
		return s.SubState
	case s.ExitStatus != nil:
		return fmt.Sprintf("%s (exit %d)", s.ActiveState, *s.ExitStatus)
	default:
		return s.ActiveState
	}
}

func memoryText(s api.ServerInfo) string {
	used := "-"
	if s.MemoryBytes != nil {
		used = sizeText(*s.MemoryBytes)
	}
	if s.MemoryLimitBytes == nil {
		return used
	}
	return used + " / " + sizeText(*s.MemoryLimitBytes)
}

// sizeText writes a byte count with a binary unit, as systemctl status does.
func sizeText(n uint64) string {
	units := []string{"B", "K", "M", "G", "T"}
	value := float64(n)
	i := 0
	for value >= 1024 && i < len(units)-1 {
		value /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", value), ".0") + units[i]
}

func durationText(seconds *float64) string {
	if seconds == nil {
		return "-"
	}
	d := time.Duration(*seconds * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func percentText(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}

func countText(n *uint64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}

// maxColumnWidth bounds the USER and SERVER columns, so that one long name does not
// widen the table for every row; --json has the full names.
const maxColumnWidth = 32

func shorten(name string) string {
	runes := []rune(name)
	if len(runes) <= maxColumnWidth {
		return name
	}
	return string(runes[:maxColumnWidth-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
