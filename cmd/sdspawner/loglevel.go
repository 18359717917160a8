package main

import (
	"fmt"
	"log/slog"

	"github.com/sdspawner/sdspawner/internal/policy"
)

// serveLogLevel picks the daemon's log level. -debug wins, then -log-level, then
// log.level from the configuration file, whose default is info.
func serveLogLevel(cfg *policy.Config, flagLevel string, debug bool) (slog.Level, error) {
	if debug {
		return slog.LevelDebug, nil
	}
	if flagLevel != "" {
		level, err := policy.ParseLogLevel(flagLevel)
		if err != nil {
			return 0, fmt.Errorf("-log-level: %w", err)
		}
		return level, nil
	}
	return cfg.LogLevel()
}
