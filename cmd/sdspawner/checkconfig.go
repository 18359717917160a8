package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/user"
	"time"

	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/spawn"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// checkConfig checks the parts of cfg that depend on this machine: site_properties
// against systemd's property types, which fail the start, and properties.allow and
// the groups, which only log warnings.
func checkConfig(ctx context.Context, cfg *policy.Config, service *spawn.Service) error {
	if err := service.CheckSiteProperties(ctx); err != nil {
		return err
	}
	warnings, err := service.CheckAllowedProperties(ctx)
	if err != nil {
		return err
	}
	for _, warning := range warnings {
		slog.Warn("configuration: " + warning)
	}
	if group := cfg.Accounts.RequiredGroup; group != "" {
		if _, err := user.LookupGroup(group); err != nil {
			slog.Warn("accounts.required_group names a group that does not exist, so every start is rejected until it is created", "group", group, "err", err)
		}
	}
	for _, group := range cfg.Callers.Groups {
		if _, err := user.LookupGroup(group); err != nil {
			slog.Warn("callers.groups contains a group that does not exist, so it grants no access", "group", group, "err", err)
		}
	}
	return nil
}

// runCheckConfig is `sdspawner serve -check-config`: it checks the configuration
// without touching the running daemon's socket, environment files or servers.
func runCheckConfig(cfg *policy.Config, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := checkConfig(ctx, cfg, spawn.New(cfg, conn, nil)); err != nil {
		return err
	}
	fmt.Printf("configuration %s is valid; warnings, if any, are above\n", path)
	return nil
}
