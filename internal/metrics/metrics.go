// Package metrics exposes the daemon's state in the Prometheus text format: each
// server's usage from its cgroup, and the daemon's own request counters. It serves
// only when the configuration names a listen address.
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sdspawner/sdspawner/internal/api"
)

// Lister returns every server with its usage; *spawn.Service implements it.
type Lister interface {
	List(ctx context.Context) ([]api.ServerInfo, error)
}

// scrapeTimeout bounds one scrape's reading of the servers.
const scrapeTimeout = 10 * time.Second

// Metrics holds the daemon's collectors. It implements api.Observer and
// spawn.Metrics.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	starts   prometheus.Histogram
	ooms     *prometheus.CounterVec
}

// New returns the daemon's metrics, reading server usage from lister at each scrape.
func New(lister Lister) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdspawner_requests_total",
			Help: "API requests answered, by endpoint and result (ok or the error code).",
		}, []string{"action", "result"}),
		starts: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sdspawner_start_duration_seconds",
			Help:    "Time from a start request's arrival until systemd's start job finished, for successful starts.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		ooms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdspawner_oom_kills_observed_total",
			Help: "Processes of users' servers that the kernel killed for memory, as the daemon noticed them while sampling, by user and server.",
		}, []string{"user", "server"}),
	}
	m.registry.MustRegister(m.requests, m.starts, m.ooms, &serverCollector{lister: lister},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry of the daemon's collectors, for the HTTP handler.
func (m *Metrics) Registry() *prometheus.Registry {
	return m.registry
}

// ObserveRequest counts one completed API request, and records the duration of a
// successful start.
func (m *Metrics) ObserveRequest(action, result string, elapsed time.Duration) {
	m.requests.WithLabelValues(action, result).Inc()
	if action == "start" && result == "ok" {
		m.starts.Observe(elapsed.Seconds())
	}
}

// OOMKills counts kills the kernel made in user's server for memory.
func (m *Metrics) OOMKills(user, server string, kills uint64) {
	m.ooms.WithLabelValues(user, server).Add(float64(kills))
}

// Descriptions of the per-server metrics, read at each scrape.
var (
	serverLabels = []string{"user", "server", "unit"}
	descTracked  = prometheus.NewDesc("sdspawner_servers_tracked",
		"Servers the daemon knows, running or ended but not yet stopped by the hub.", nil, nil)
	descState = prometheus.NewDesc("sdspawner_server_state",
		"1 for the server's current systemd state (active_state label).", append(serverLabels, "active_state"), nil)
	descMemory = prometheus.NewDesc("sdspawner_server_memory_bytes",
		"Memory the server's cgroup uses, page cache included.", serverLabels, nil)
	descMemoryLimit = prometheus.NewDesc("sdspawner_server_memory_limit_bytes",
		"The server's memory limit (MemoryMax).", serverLabels, nil)
	descCPU = prometheus.NewDesc("sdspawner_server_cpu_seconds_total",
		"CPU time the server's cgroup has used.", serverLabels, nil)
	descCPULimit = prometheus.NewDesc("sdspawner_server_cpu_limit_cores",
		"The server's CPU quota in cores.", serverLabels, nil)
	descTasks = prometheus.NewDesc("sdspawner_server_tasks",
		"Processes and threads in the server's cgroup.", serverLabels, nil)
	descOOM = prometheus.NewDesc("sdspawner_server_oom_kills_total",
		"Processes in the server's cgroup that the kernel killed for memory, from the cgroup's own counter.", serverLabels, nil)
	descUptime = prometheus.NewDesc("sdspawner_server_start_time_seconds",
		"When the server's unit became active, in seconds since the Unix epoch.", serverLabels, nil)
)

// serverCollector reads every server's usage at scrape time, so the figures are as
// fresh as the scrape and no cache of them is kept.
type serverCollector struct {
	lister Lister
}

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTracked, descState, descMemory, descMemoryLimit, descCPU, descCPULimit, descTasks, descOOM, descUptime} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	servers, err := c.lister.List(ctx)
	if err != nil {
		slog.Warn("reading servers for metrics failed", "err", err)
		ch <- prometheus.NewInvalidMetric(descTracked, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(len(servers)))
	for _, s := range servers {
		labels := []string{s.User, s.Server, s.Unit}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, append(labels, s.ActiveState)...)
		gauge := func(desc *prometheus.Desc, kind prometheus.ValueType, value *float64) {
			if value != nil {
				ch <- prometheus.MustNewConstMetric(desc, kind, *value, labels...)
			}
		}
		gauge(descMemory, prometheus.GaugeValue, toFloat(s.MemoryBytes))
		gauge(descMemoryLimit, prometheus.GaugeValue, toFloat(s.MemoryLimitBytes))
		gauge(descCPU, prometheus.CounterValue, s.CPUSeconds)
		gauge(descCPULimit, prometheus.GaugeValue, s.CPULimit)
		gauge(descTasks, prometheus.GaugeValue, toFloat(s.Tasks))
		gauge(descOOM, prometheus.CounterValue, toFloat(s.OOMKills))
		if s.StartedAt != "" {
			if started, err := time.Parse(time.RFC3339, s.StartedAt); err == nil {
				seconds := float64(started.Unix())
				gauge(descUptime, prometheus.GaugeValue, &seconds)
			}
		}
	}
}

func toFloat(v *uint64) *float64 {
	if v == nil {
		return nil
	}
	f := float64(*v)
	return &f
}
