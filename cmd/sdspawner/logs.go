package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
)

func runLogs(args []string) error {
	var follow, asJSON bool
	var lines int
	c, user, server, err := serverFlags("logs", args, func(flags *flag.FlagSet) {
		flags.BoolVar(&follow, "f", false, "keep printing new lines until interrupted")
		flags.IntVar(&lines, "n", 100, "how many of the last lines to print")
		flags.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	return c.Logs(ctx, user, server, lines, follow, func(entry api.LogEntry) error {
		if asJSON {
			return printJSONLine(entry)
		}
		_, err := fmt.Println(logLine(entry))
		return err
	})
}

// logLine formats an entry like journalctl's short-iso output.
func logLine(entry api.LogEntry) string {
	stamp := entry.Time
	if t, err := time.Parse(time.RFC3339Nano, entry.Time); err == nil {
		stamp = t.Local().Format("2006-01-02T15:04:05-0700")
	}
	return fmt.Sprintf("%s %s[%d]: %s", stamp, entry.Identifier, entry.PID, entry.Message)
}
