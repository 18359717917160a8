package main

import (
	"context"
	"log/slog"

	"github.com/sdspawner/sdspawner/internal/cgroup"
	"github.com/sdspawner/sdspawner/internal/metrics"
	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/spawn"
)

// startObservability makes service sample its servers' cgroups and, when the
// configuration names an address, serves Prometheus metrics there. It returns the
// metrics, which count the API's requests.
func startObservability(ctx context.Context, cfg *policy.Config, service *spawn.Service) *metrics.Metrics {
	layout, err := cgroup.DetectLayout()
	if err != nil {
		slog.Warn("cgroup mounts could not be read; sdspawner ps and the metrics show no usage", "err", err)
	}
	m := metrics.New(service)
	service.Run(ctx, layout, m)
	if cfg.Metrics.Listen == "" {
		return m
	}
	go func() {
		if err := m.Serve(ctx, cfg.Metrics.Listen); err != nil {
			// Users' spawns matter more than the metrics, so the API stays up.
			slog.Error("metrics are not served", "err", err)
		}
	}()
	return m
}
