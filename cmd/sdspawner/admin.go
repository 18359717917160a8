package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/client"
	"github.com/sdspawner/sdspawner/internal/policy"
)

// serverFlags parses the options shared by the commands that address one server:
// USER [SERVER] and -socket.
func serverFlags(name string, args []string, extra func(*flag.FlagSet)) (c *client.Client, user, server string, err error) {
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	socket := flags.String("socket", policy.Default().Socket.Path, "the daemon's API socket")
	if extra != nil {
		extra(flags)
	}
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: sdspawner %s [options] USER [SERVER]\n", name)
		flags.PrintDefaults()
	}
	positional, err := parseInterspersed(flags, args)
	if err != nil {
		return nil, "", "", err
	}
	if len(positional) < 1 || len(positional) > 2 {
		flags.Usage()
		return nil, "", "", fmt.Errorf("expected USER [SERVER], got %d arguments: %q", len(positional), positional)
	}
	positional = append(positional, "")
	return client.New(*socket), positional[0], positional[1], nil
}

// parseInterspersed parses args with flags, allowing options after the positional
// arguments too (`sdspawner logs alice -f`), and returns the positional arguments.
// After "--" every argument is positional.
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		rest := flags.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// flag.Parse consumed a "--" just before rest if the argument before rest was one.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func runStatus(args []string) error {
	c, user, server, err := serverFlags("status", args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Status(ctx, user, server)
	if err != nil {
		return err
	}
	return printJSON(st)
}

func runStop(args []string) error {
	var now bool
	c, user, server, err := serverFlags("stop", args, func(flags *flag.FlagSet) {
		flags.BoolVar(&now, "now", false, "kill at once instead of SIGTERM and a grace period")
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := c.Stop(ctx, api.StopRequest{User: user, Server: server, Now: now})
	if err != nil {
		return err
	}
	return printJSON(st)
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
