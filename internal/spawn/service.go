package spawn

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/sdspawner/sdspawner/internal/account"
	"github.com/sdspawner/sdspawner/internal/cgroup"
	"github.com/sdspawner/sdspawner/internal/envfile"
	"github.com/sdspawner/sdspawner/internal/journal"
	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// Systemd is the part of systemd's manager that the service uses; *systemd.Conn
// implements it, and unit tests use a fake.
type Systemd interface {
	StartTransient(ctx context.Context, name string, props []systemd.Property) error
	Stop(ctx context.Context, name string) error
	Kill(ctx context.Context, name string) error
	ResetFailed(ctx context.Context, name string) error
	State(ctx context.Context, name string) (systemd.UnitState, error)
	RuntimeState(ctx context.Context, name string) (systemd.UnitState, error)
	LoadState(ctx context.Context, name string) (systemd.UnitState, error)
	UnitProperty(ctx context.Context, name, iface, property string) (any, error)
	PropertyTypes(ctx context.Context) (map[string]string, error)
}

// Journal fields that mark a unit as sdspawner's and name the user and server it runs. They are
// unit properties (LogExtraFields), so they survive a restart of the daemon.
const (
	fieldManaged = "SDSPAWNER_MANAGED"
	fieldUser    = "SDSPAWNER_USER"
	fieldServer  = "SDSPAWNER_SERVER"
)

// key identifies one server: a JupyterHub user and a server name, "" for the default.
type key struct {
	user   string
	server string
}

// entry is the index record of one server.
type entry struct {
	unit string
	acct account.Account
	// state is the unit's last known state, kept current from systemd's events so
	// that a status request needs no D-Bus call; nil until first read.
	state *systemd.UnitState
	// endHandled is set once the daemon has cleaned up after the unit ended.
	endHandled bool
	// failure is the reason the unit's run failed, "" while it runs or after a clean exit.
	failure string
	// limits are the unit's memory and CPU limits, which the state reads that follow
	// systemd's events leave out because they do not change.
	limits limits
	// last and prev are the newest usage samples, for the recent CPU use and for
	// noticing new OOM kills.
	last, prev *sample
	// oomSeen is the unit's OOM kill counter at the last read, nil before the first.
	oomSeen *uint64
	// cgroup, invocation and startedAt describe the unit's current run. The state
	// reads that follow systemd's events leave them out, so they are read once, when
	// first needed.
	cgroup     string
	invocation string
	startedAt  time.Time
}

// Service starts, stops and reports users' servers.
type Service struct {
	cfg  *policy.Config
	sd   Systemd
	envs *envfile.Store

	// lookupUser, stat, resolve, tailJournal, lastUnit, dial, readUsage and numCPU
	// are replaced in unit tests.
	lookupUser  func(name string) (account.Account, error)
	stat        func(path string) (fs.FileInfo, error)
	resolve     func(path string) (string, error)
	tailJournal func(q journal.Query) ([]journal.Entry, error)
	lastUnit    func(userField, user, serverField, server, managedField string) (string, error)
	dial        func(ctx context.Context, addr string) error
	readUsage   func(cgroupPath string) (cgroup.Usage, error)
	numCPU      func() int

	// background is the daemon's lifetime, for work that outlives a request, such as
	// the readiness check.
	background context.Context
	metrics    Metrics

	mu sync.Mutex
	// servers maps each known server to its unit.
	servers map[key]entry
	// units maps each unit in servers back to its server.
	units map[string]key
	// busy holds the servers with a start or stop in progress.
	busy map[key]bool
	// types caches systemd's D-Bus type of each service property.
	types map[string]string
	// progress holds the events of each server's latest start.
	progress map[key]*progressLog
}

// New returns a Service that creates units through sd and writes environment files
// into envs.
func New(cfg *policy.Config, sd Systemd, envs *envfile.Store) *Service {
	return &Service{
		cfg:         cfg,
		sd:          sd,
		envs:        envs,
		lookupUser:  account.Lookup,
		stat:        os.Stat,
		resolve:     filepath.EvalSymlinks,
		tailJournal: journal.Tail,
		lastUnit:    journal.LastUnit,
		dial:        dialPort,
		readUsage:   noUsage,
		numCPU:      runtime.NumCPU,
		background:  context.Background(),
		metrics:     noMetrics{},
		servers:     make(map[key]entry),
		units:       make(map[string]key),
		busy:        make(map[key]bool),
		progress:    make(map[key]*progressLog),
	}
}

// Recover rebuilds the index from systemd after a daemon start: every environment file
// whose unit is loaded and carries sdspawner's marker is indexed again, and every other
// environment file is removed, because its unit is gone.
func (s *Service) Recover(ctx context.Context) error {
	units, err := s.envs.Units()
	if err != nil {
		return err
	}
	for _, unit := range units {
		state, err := s.sd.State(ctx, unit)
		if err != nil {
			slog.Warn("read state of unit during recovery failed; keeping its environment file", "unit", unit, "err", err)
			continue
		}
		user, _ := state.Field(fieldUser)
		server, _ := state.Field(fieldServer)
		_, managed := state.Field(fieldManaged)
		if !state.Loaded() || !managed {
			slog.Info("removing environment file of a unit that no longer exists", "unit", unit)
			if err := s.envs.Remove(unit); err != nil {
				slog.Warn("remove stale environment file failed", "unit", unit, "err", err)
			}
			continue
		}
		acct, err := s.lookupUser(state.User)
		if err != nil {
			slog.Warn("unix user of a running unit not found", "unit", unit, "unix_user", state.User, "err", err)
			acct = account.Account{Name: state.User}
		}
		k := key{user: user, server: server}
		s.remember(k, entry{
			unit: unit, acct: acct, cgroup: state.ControlGroup, invocation: state.InvocationID,
			limits:    limits{memoryMax: state.MemoryMax, cpuQuotaPerSecUSec: state.CPUQuotaPerSecUSec},
			startedAt: timestamp(state.ActiveEnterTimestamp),
		})
		slog.Info("recovered server", "user", user, "server", server, "unit", unit, "active_state", state.ActiveState)
		// A server that ended while the daemon was down is cleaned up now.
		s.update(ctx, k, unit)
	}
	return nil
}

// claim marks k busy, or returns a conflict error when a start or stop of the same
// server is already in progress.
func (s *Service) claim(k key, action string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[k] {
		return newError(KindConflict, "cannot %s server %q of user %q: a start or stop of it is already in progress", action, k.server, k.user)
	}
	s.busy[k] = true
	return nil
}

// claimWhenFree waits until no start or stop of k is in progress, then marks k busy.
// A stop uses it, so that a stop sent while the server is still starting (the hub
// cancelling a slow spawn) stops the server that the start creates.
func (s *Service) claimWhenFree(ctx context.Context, k key) error {
	for {
		s.mu.Lock()
		if !s.busy[k] {
			s.busy[k] = true
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-time.After(claimPollInterval):
		case <-ctx.Done():
			return newError(KindConflict, "cannot stop server %q of user %q: its start is still in progress (%v)", k.server, k.user, ctx.Err())
		}
	}
}

// claimPollInterval is how often a waiting stop checks whether a start has finished.
const claimPollInterval = 20 * time.Millisecond

func (s *Service) release(k key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, k)
}

// isBusy reports whether a start or stop of k is in progress.
func (s *Service) isBusy(k key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[k]
}

func (s *Service) lookup(k key) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.servers[k]
	return e, ok
}

// unitOwner returns the server that the index maps unit to, if any.
func (s *Service) unitOwner(unit string) (key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.units[unit]
	return k, ok
}

// remember puts a server into the index.
func (s *Service) remember(k key, e entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.servers[k]; ok {
		delete(s.units, old.unit)
	}
	s.servers[k] = e
	s.units[e.unit] = k
}

// forget removes a server from the index.
func (s *Service) forget(k key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.servers[k]; ok {
		delete(s.units, old.unit)
	}
	delete(s.servers, k)
}

// cacheState stores the state of k's unit, unless k now runs another unit. Once a
// unit has ended, a later "not loaded" does not replace its final state, so the exit
// status survives systemd unloading the unit.
func (s *Service) cacheState(k key, state systemd.UnitState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.servers[k]
	if !ok || e.unit != state.Name {
		return
	}
	if !state.Loaded() && e.state != nil && ended(*e.state) {
		return
	}
	e.state = &state
	s.servers[k] = e
}

// markEndHandled records that k's unit was cleaned up after it ended, and reports
// whether that had already happened.
func (s *Service) markEndHandled(k key, unit string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.servers[k]
	if !ok || e.unit != unit {
		return true
	}
	if e.endHandled {
		return true
	}
	e.endHandled = true
	s.servers[k] = e
	return false
}

// ended reports whether state is that of a unit whose processes are gone. A unit with
// a queued job has not ended: it is inactive while its start job waits, for example
// for a unit ordered before it, and its environment file is still to be read.
func ended(state systemd.UnitState) bool {
	if !state.Loaded() {
		return true
	}
	return state.JobID == 0 && (state.ActiveState == "inactive" || state.ActiveState == "failed")
}

// serverCounts returns how many servers user runs and how many run in total, leaving
// out k, the server being started.
func (s *Service) serverCounts(k key) (userServers, allServers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for other := range s.servers {
		if other == k {
			continue
		}
		allServers++
		if other.user == k.user {
			userServers++
		}
	}
	return userServers, allServers
}
