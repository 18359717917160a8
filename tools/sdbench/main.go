// Command sdbench measures sdspawner against the upstream way (systemd-run and
// systemctl subprocesses) and against raw D-Bus calls to systemd, inside a throwaway
// systemd. bench/run.py boots the bed, starts the daemon and runs this program there.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/client"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// result is one measured series, in milliseconds.
type result struct {
	Name    string    `json:"name"`
	Samples []float64 `json:"-"`
	Median  float64   `json:"median_ms"`
	P95     float64   `json:"p95_ms"`
	Total   float64   `json:"total_ms,omitempty"`
	Count   int       `json:"count"`
}

func summarize(name string, samples []float64, total time.Duration) result {
	sorted := append([]float64(nil), samples...)
	sort.Float64s(sorted)
	r := result{Name: name, Samples: samples, Count: len(samples)}
	if len(sorted) > 0 {
		r.Median = sorted[len(sorted)/2]
		r.P95 = sorted[min(len(sorted)-1, len(sorted)*95/100)]
	}
	if total > 0 {
		r.Total = ms(total)
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// The unit properties of a typical configuration, the same for every method.
const (
	memLimit = 1 << 30
	cpuLimit = 1.0
	user     = "alice"
)

// stopTimeout is the daemon's default servers.stop_timeout, which it sets as
// TimeoutStopUSec on every unit.
const stopTimeout = 30 * time.Second

// rawProps returns the properties that the daemon sets for startRequest(i), so that
// every method requests the same work from systemd. The journal fields have other names
// than the daemon's markers, so that the daemon never takes these units for its own.
func rawProps(unit string, i int, envFile string) []systemd.Property {
	return []systemd.Property{
		systemd.PropDescription(fmt.Sprintf("JupyterHub server %q of user %q (sdspawner)", "", benchUser(i))),
		systemd.PropType("exec"),
		systemd.PropExecStartEx([]string{"/bin/sleep", "3600"}),
		systemd.PropWorkingDirectory("/home/" + user),
		systemd.PropRuntimeDirectory(strings.TrimSuffix(unit, ".service")), systemd.PropRuntimeDirectoryMode(0o700),
		systemd.PropLogExtraFields("SDBENCH_MANAGED=1", "SDBENCH_USER="+benchUser(i), "SDBENCH_SERVER="),
		systemd.PropOOMPolicy("continue"), systemd.PropCPUWeight(100), systemd.PropMemoryAccounting(true),
		systemd.PropTimeoutStopUSec(uint64(stopTimeout / time.Microsecond)),
		systemd.PropPrivateTmp(true), systemd.PropPrivateDevices(false), systemd.PropNoNewPrivileges(true),
		systemd.PropUser(user), systemd.PropGroup(user),
		systemd.PropMemoryMax(memLimit), systemd.PropCPUQuotaPerSecUSec(uint64(cpuLimit * 1e6)),
		systemd.PropEnvironmentFile(envFile),
	}
}

// systemdRunArgs returns systemd-run's arguments for the same properties as rawProps.
func systemdRunArgs(unit string, i int, envFile string) []string {
	return []string{
		"--unit=" + unit, "--quiet",
		fmt.Sprintf("--description=JupyterHub server %q of user %q (sdspawner)", "", benchUser(i)),
		"--property=Type=exec", "--working-directory=/home/" + user,
		"--property=RuntimeDirectory=" + strings.TrimSuffix(unit, ".service"), "--property=RuntimeDirectoryMode=0700",
		"--property=LogExtraFields=SDBENCH_MANAGED=1", "--property=LogExtraFields=SDBENCH_USER=" + benchUser(i),
		"--property=LogExtraFields=SDBENCH_SERVER=",
		"--property=OOMPolicy=continue", "--property=CPUWeight=100", "--property=MemoryAccounting=yes",
		fmt.Sprintf("--property=TimeoutStopSec=%d", int(stopTimeout.Seconds())),
		"--property=PrivateTmp=yes", "--property=PrivateDevices=no", "--property=NoNewPrivileges=yes",
		"--uid=" + user, "--gid=" + user,
		fmt.Sprintf("--property=MemoryMax=%d", memLimit), fmt.Sprintf("--property=CPUQuota=%d%%", int(cpuLimit*100)),
		"--property=EnvironmentFile=" + envFile, "/bin/sleep", "3600",
	}
}

func benchUser(i int) string { return fmt.Sprintf("bench%d", i) }

func startRequest(i int) *api.StartRequest {
	mem, cpu := int64(memLimit), cpuLimit
	return &api.StartRequest{
		User: fmt.Sprintf("bench%d", i), Cmd: []string{"/bin/sleep", "3600"},
		Env:              map[string]string{"JUPYTERHUB_API_TOKEN": "benchmark-token", "JUPYTERHUB_USER": fmt.Sprintf("bench%d", i)},
		UsernameTemplate: user, MemLimit: &mem, CPULimit: &cpu, IsolateTmp: true,
	}
}

// method is one way to start, poll and stop a unit.
type method struct {
	name  string
	start func(ctx context.Context, i int) error
	poll  func(ctx context.Context, i int) error
	stop  func(ctx context.Context, i int) error
}

func run(cmd string, args ...string) error {
	out, err := exec.Command(cmd, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, out)
	}
	return nil
}

func methods(conn *systemd.Conn, c *client.Client, envFile string) []method {
	rawUnit := func(i int) string { return fmt.Sprintf("bench-raw-%d.service", i) }
	runUnit := func(i int) string { return fmt.Sprintf("bench-run-%d.service", i) }
	return []method{
		{
			name: "raw D-Bus",
			start: func(ctx context.Context, i int) error {
				return conn.StartTransient(ctx, rawUnit(i), rawProps(rawUnit(i), i, envFile))
			},
			poll: func(ctx context.Context, i int) error {
				_, err := conn.State(ctx, rawUnit(i))
				return err
			},
			stop: func(ctx context.Context, i int) error { return conn.Stop(ctx, rawUnit(i)) },
		},
		{
			name: "systemd-run",
			start: func(ctx context.Context, i int) error {
				return run("systemd-run", systemdRunArgs(runUnit(i), i, envFile)...)
			},
			poll: func(ctx context.Context, i int) error { return run("systemctl", "is-active", "--quiet", runUnit(i)) },
			stop: func(ctx context.Context, i int) error { return run("systemctl", "stop", runUnit(i)) },
		},
		{
			name: "sdspawner",
			start: func(ctx context.Context, i int) error {
				_, err := c.Start(ctx, startRequest(i))
				return err
			},
			poll: func(ctx context.Context, i int) error {
				_, err := c.Status(ctx, fmt.Sprintf("bench%d", i), "")
				return err
			},
			stop: func(ctx context.Context, i int) error {
				_, err := c.Stop(ctx, api.StopRequest{User: fmt.Sprintf("bench%d", i)})
				return err
			},
		},
	}
}

func sequential(ctx context.Context, name string, n int, f func(context.Context, int) error) (result, error) {
	samples := make([]float64, 0, n)
	begin := time.Now()
	for i := range n {
		t := time.Now()
		if err := f(ctx, i); err != nil {
			return result{}, fmt.Errorf("%s #%d: %w", name, i, err)
		}
		samples = append(samples, ms(time.Since(t)))
	}
	return summarize(name, samples, time.Since(begin)), nil
}

func burst(ctx context.Context, name string, n int, f func(context.Context, int) error) (result, error) {
	samples := make([]float64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			errs[i] = f(ctx, i)
			samples[i] = ms(time.Since(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return result{}, fmt.Errorf("%s #%d: %w", name, i, err)
		}
	}
	return summarize(name, samples, time.Since(begin)), nil
}

func daemonRSS(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func main() {
	mode := flag.String("mode", "compare", "what to run: compare (the three methods side by side), "+
		"memory (RSS and status cost with many units, in a fresh daemon) or profile (CPU profiles of starts)")
	n := flag.Int("n", 200, "units per sequential and burst run")
	rounds := flag.Int("rounds", 3, "rounds of the comparison, each with the methods in another order")
	pollUnits := flag.Int("poll-units", 1000, "units running during the memory run's poll measurement")
	polls := flag.Int("polls", 2000, "status requests in the poll measurement")
	socket := flag.String("socket", "/run/sdspawner/sdspawner.sock", "the daemon's socket")
	daemonPID := flag.Int("daemon-pid", 0, "pid of sdspawner serve, for its RSS")
	pprofSocket := flag.String("pprof-socket", "", "the daemon's profiling socket (serve --pprof-socket); profiles are skipped when empty")
	profileDir := flag.String("profile-dir", ".", "directory for the profiles")
	flag.Parse()

	ctx := context.Background()
	c := client.New(*socket)
	var profiles *profiler
	if *pprofSocket != "" {
		profiles = newProfiler(*pprofSocket, *profileDir)
	}
	var err error
	switch *mode {
	case "compare":
		err = compare(ctx, c, *n, *rounds)
	case "memory":
		err = memory(ctx, c, profiles, *pollUnits, *polls, *daemonPID)
	case "profile":
		if profiles == nil {
			err = fmt.Errorf("-mode=profile needs -pprof-socket")
			break
		}
		err = profileStarts(ctx, c, profiles, *n)
	default:
		err = fmt.Errorf("unknown -mode %q: use compare, memory or profile", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdbench:", err)
		os.Exit(1)
	}
}

func writeReport(report map[string]any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}

// settle is the pause before each start and stop phase, in which systemd finishes
// the cleanup of the previous phase's units, so that it does not count against the
// next method.
const settle = time.Second

// series collects one measurement's samples over several rounds.
type series struct {
	samples []float64
	totals  []float64
}

// compare starts, polls and stops n units with each method, one after the other and
// then all at once, in rounds. Each round runs the methods in another order, so that
// no method always follows the heavy systemd-run burst.
func compare(ctx context.Context, c *client.Client, n, rounds int) error {
	conn, err := systemd.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	envFile := "/run/sdbench.env"
	if err := os.WriteFile(envFile, []byte("JUPYTERHUB_API_TOKEN=\"benchmark-token\"\n"), 0o600); err != nil {
		return err
	}

	collected := map[string]*series{}
	var names []string
	add := func(r result) {
		s, ok := collected[r.Name]
		if !ok {
			s = &series{}
			collected[r.Name] = s
			names = append(names, r.Name)
		}
		s.samples = append(s.samples, r.Samples...)
		if r.Total > 0 {
			s.totals = append(s.totals, r.Total)
		}
	}
	all := methods(conn, c, envFile)
	for round := range rounds {
		order := append(append([]method(nil), all[round%len(all):]...), all[:round%len(all)]...)
		for _, m := range order {
			if err := compareMethod(ctx, conn, m, n, add); err != nil {
				return fmt.Errorf("round %d: %w", round+1, err)
			}
		}
	}

	// Rows in a fixed order: by method, then as measured.
	var results []result
	for _, m := range all {
		for _, name := range names {
			if !strings.HasSuffix(name, ", "+m.name) {
				continue
			}
			s := collected[name]
			r := summarize(name, s.samples, 0)
			if len(s.totals) > 0 {
				sort.Float64s(s.totals)
				r.Total = s.totals[len(s.totals)/2]
			}
			results = append(results, r)
		}
	}
	report := map[string]any{"results": results, "rounds": rounds}
	if version, err := conn.Version(ctx); err == nil {
		report["systemd"] = version
	}
	return writeReport(report)
}

// compareMethod runs one round of m: sequential start, poll and stop, then burst start
// and stop.
func compareMethod(ctx context.Context, conn *systemd.Conn, m method, n int, add func(result)) error {
	for _, phase := range []struct {
		label string
		each  func(context.Context, string, int, func(context.Context, int) error) (result, error)
	}{{"sequential", sequential}, {"burst", burst}} {
		time.Sleep(settle)
		start, err := phase.each(ctx, fmt.Sprintf("start %s, %s", phase.label, m.name), n, m.start)
		if err != nil {
			return err
		}
		add(start)
		if phase.label == "sequential" {
			poll, err := sequential(ctx, fmt.Sprintf("poll, %s", m.name), n, m.poll)
			if err != nil {
				return err
			}
			add(poll)
		}
		if phase.label == "sequential" && m.name == "raw D-Bus" {
			// The daemon's own state read, for comparison with State's GetAll above.
			runtimePoll, err := sequential(ctx, "poll with the daemon's runtime properties, raw D-Bus", n, func(ctx context.Context, i int) error {
				_, err := conn.RuntimeState(ctx, fmt.Sprintf("bench-raw-%d.service", i))
				return err
			})
			if err != nil {
				return err
			}
			add(runtimePoll)
		}
		time.Sleep(settle)
		stop, err := phase.each(ctx, fmt.Sprintf("stop %s, %s", phase.label, m.name), n, m.stop)
		if err != nil {
			return err
		}
		add(stop)
	}
	return nil
}

// memory measures the daemon's RSS with 0, 100 and pollUnits servers, and the cost of
// a status request with pollUnits servers running. It expects a freshly started
// daemon, so that the first sample is a baseline and no garbage of earlier runs counts.
// The servers are left running for the Python poll measurement that follows.
func memory(ctx context.Context, c *client.Client, profiles *profiler, pollUnits, polls, daemonPID int) error {
	rss := map[string]float64{}
	sample := func(label string) {
		if daemonPID > 0 {
			rss[label], _ = daemonRSS(daemonPID)
		}
	}
	sample("0")
	for i := range pollUnits {
		if _, err := c.Start(ctx, startRequest(i)); err != nil {
			return fmt.Errorf("start unit %d of %d for the memory run: %w", i, pollUnits, err)
		}
		if i+1 == 100 {
			sample("100")
		}
	}
	sample(strconv.Itoa(pollUnits))
	if profiles != nil {
		if err := profiles.fetch(ctx, "heap?gc=1", fmt.Sprintf("heap-%d-units.pb.gz", pollUnits)); err != nil {
			return err
		}
	}
	pollRun, err := sequential(ctx, fmt.Sprintf("poll with %d units, sdspawner", pollUnits), polls,
		func(ctx context.Context, i int) error {
			_, err := c.Status(ctx, fmt.Sprintf("bench%d", i%pollUnits), "")
			return err
		})
	if err != nil {
		return err
	}
	return writeReport(map[string]any{"results": []result{pollRun}, "rss_mib": rss})
}
