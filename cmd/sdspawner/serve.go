package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/envfile"
	"github.com/sdspawner/sdspawner/internal/logging"
	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/spawn"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// Timeouts of the API's HTTP server. A start waits for systemd's start job, which
// can take a while on a loaded machine, so the write timeout is generous. The read
// timeouts drop a client that trickles its request.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 3 * time.Minute
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 30 * time.Second
)

func runServe(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	configPath := flags.String("config", policy.DefaultPath, "configuration file (TOML)")
	debug := flags.Bool("debug", false, "log debug messages, the same as -log-level debug")
	logLevel := flags.String("log-level", "", "lowest level to log: debug, info, warn or error (default: log.level from the configuration file, else info)")
	pprofSocket := flags.String("pprof-socket", "", "serve Go runtime profiles (net/http/pprof) to root on a Unix socket at this path; off when empty")
	onlyCheck := flags.Bool("check-config", false, "check the configuration file against this machine's systemd and accounts, print the result and exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	explicit := false
	flags.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })

	cfg, err := policy.Load(*configPath, explicit)
	if err != nil {
		return err
	}
	level, err := serveLogLevel(&cfg, *logLevel, *debug)
	if err != nil {
		return err
	}
	slog.SetDefault(logging.New(level, os.Stderr))
	if *onlyCheck {
		return runCheckConfig(&cfg, *configPath)
	}
	if os.Geteuid() != 0 {
		return errors.New("the daemon must run as root, because it starts services as other users")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	conn, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	systemdVersion, err := conn.Version(ctx)
	if err != nil {
		return err
	}

	envs, err := envfile.Open(cfg.EnvDir)
	if err != nil {
		return err
	}
	service := spawn.New(&cfg, conn, envs)
	if err := checkConfig(ctx, &cfg, service); err != nil {
		return err
	}
	if err := service.Recover(ctx); err != nil {
		return fmt.Errorf("recover servers from systemd: %w", err)
	}

	if *pprofSocket != "" {
		closeProfiling, err := listenProfiling(*pprofSocket)
		if err != nil {
			return err
		}
		defer closeProfiling()
	}

	go watchSystemd(ctx, conn, service)
	observer := startObservability(ctx, &cfg, service)

	listener, err := listenAPI(&cfg)
	if err != nil {
		return err
	}
	handler := api.NewServer(&cfg, service, errorKind, version)
	handler.SetObserver(observer)
	baseContext, cancelRequests := requestContexts()
	defer cancelRequests(nil)
	server := &http.Server{
		Handler:           handler,
		BaseContext:       baseContext,
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	slog.Info("sdspawner started", "version", version, "systemd", systemdVersion, "socket", cfg.Socket.Path, "env_dir", cfg.EnvDir)

	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	notifySystemd(daemon.SdNotifyReady)
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve API on %s: %w", cfg.Socket.Path, err)
	case <-ctx.Done():
	}
	notifySystemd(daemon.SdNotifyStopping)
	slog.Info("stopping: finishing requests in progress", "timeout", shutdownTimeout)
	if err := shutdownAPI(server, cancelRequests); err != nil {
		return err
	}
	slog.Info("sdspawner stopped; servers keep running")
	return nil
}

// errorKind maps the service's error kinds to API error codes and HTTP statuses.
func errorKind(err error) (string, int) {
	switch spawn.KindOf(err) {
	case spawn.KindInvalid:
		return "invalid_request", http.StatusBadRequest
	case spawn.KindForbidden:
		return "forbidden", http.StatusForbidden
	case spawn.KindNotFound:
		return "not_found", http.StatusNotFound
	case spawn.KindConflict:
		return "conflict", http.StatusConflict
	case spawn.KindUnavailable:
		return "unavailable", http.StatusServiceUnavailable
	default:
		return "internal", http.StatusInternalServerError
	}
}

// Bounds of the wait between attempts to reconnect to systemd.
const (
	reconnectMinDelay = time.Second
	reconnectMaxDelay = 30 * time.Second
)

// watchSystemd feeds systemd's events to service until ctx ends. When the bus
// connection drops, it reconnects with growing delays and reads every state again.
func watchSystemd(ctx context.Context, conn *systemd.Conn, service *spawn.Service) {
	events := make(chan systemd.Event, 1024)
	go func() {
		for {
			select {
			case event := <-events:
				service.HandleEvent(ctx, event)
			case <-ctx.Done():
				return
			}
		}
	}()

	for {
		err := conn.Watch(ctx, events)
		if ctx.Err() != nil {
			return
		}
		slog.Error("watching systemd's events stopped; reconnecting", "err", err)
		delay := reconnectMinDelay
		for {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			err := conn.Reconnect(ctx)
			if err == nil {
				break
			}
			delay = min(2*delay, reconnectMaxDelay)
			slog.Error("reconnecting to systemd failed; retrying", "err", err, "retry_in", delay)
		}
		slog.Info("reconnected to systemd")
	}
}
