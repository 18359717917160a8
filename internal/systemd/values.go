package systemd

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// ResolveName maps a property name as written in a unit file to its D-Bus name, given
// the D-Bus types from PropertyTypes. Unit files write times in seconds ("TimeoutStopSec")
// where D-Bus carries microseconds ("TimeoutStopUSec"), and "CPUQuota" is a percentage
// carried as "CPUQuotaPerSecUSec". It returns false for a name systemd does not know.
func ResolveName(name string, types map[string]string) (string, bool) {
	if _, ok := types[name]; ok {
		return name, true
	}
	if name == "CPUQuota" {
		return "CPUQuotaPerSecUSec", true
	}
	if base, ok := strings.CutSuffix(name, "Sec"); ok {
		if _, ok := types[base+"USec"]; ok {
			return base + "USec", true
		}
	}
	return "", false
}

// ParseValue converts the text values of one property into the Go value that D-Bus
// signature needs. Booleans take yes/no, true/false, on/off or 1/0. Integers of
// properties ending in USec take time spans ("30s", "5min", "infinity"), of properties
// starting with Memory sizes ("512M", "2G", "infinity", with K, M, G, T as powers of
// 1024), and of all others a number or "infinity". Lists take each value as one entry.
// CPUQuotaPerSecUSec also takes a percentage ("50%"), and BindPaths and
// BindReadOnlyPaths take systemd's "SOURCE[:DESTINATION[:OPTIONS]]" entries. Other
// signatures are not supported.
func ParseValue(dbusName, signature string, values []string) (any, error) {
	if signature == "as" {
		return values, nil
	}
	if signature == "a(ssbt)" {
		return parseBindPaths(dbusName, values)
	}
	if len(values) != 1 {
		return nil, fmt.Errorf("property %s takes one value, got %d", dbusName, len(values))
	}
	text := strings.TrimSpace(values[0])
	switch signature {
	case "s":
		return values[0], nil
	case "b":
		return parseBool(dbusName, text)
	case "t":
		return parseUnsigned(dbusName, text)
	case "u", "q", "y":
		v, err := parseUnsigned(dbusName, text)
		if err != nil {
			return nil, err
		}
		bits := map[string]uint{"u": 32, "q": 16, "y": 8}[signature]
		if v > 1<<bits-1 {
			return nil, fmt.Errorf("property %s value %q is out of range for D-Bus type %s", dbusName, text, signature)
		}
		switch signature {
		case "u":
			return uint32(v), nil
		case "q":
			return uint16(v), nil
		default:
			return uint8(v), nil
		}
	case "i", "x", "n":
		bits := map[string]int{"i": 32, "x": 64, "n": 16}[signature]
		v, err := strconv.ParseInt(text, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("property %s value %q is not a whole number: %w", dbusName, text, err)
		}
		switch signature {
		case "i":
			return int32(v), nil
		case "n":
			return int16(v), nil
		default:
			return v, nil
		}
	}
	return nil, fmt.Errorf("property %s has the D-Bus type %s, which unit_extra_properties does not support; only strings, booleans, numbers and lists of strings are", dbusName, signature)
}

// MakeProperty returns the property dbusName with value, ready for StartTransient.
func MakeProperty(dbusName string, value any) Property {
	return Property{Name: dbusName, Value: dbus.MakeVariant(value)}
}

func parseBool(name, text string) (bool, error) {
	switch strings.ToLower(text) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("property %s value %q is not a boolean: use yes or no", name, text)
}

func parseUnsigned(name, text string) (uint64, error) {
	if text == "infinity" {
		return math.MaxUint64, nil
	}
	switch {
	case name == "CPUQuotaPerSecUSec" && strings.HasSuffix(text, "%"):
		percent, err := strconv.ParseFloat(strings.TrimSuffix(text, "%"), 64)
		if err != nil || percent <= 0 || math.IsInf(percent, 0) {
			return 0, fmt.Errorf("property CPUQuota value %q is not a positive percentage", text)
		}
		return uint64(math.Round(percent * 10000)), nil
	case strings.HasSuffix(name, "USec"):
		return parseTimeSpan(name, text)
	case strings.HasPrefix(name, "Memory"):
		return ParseSize(name, text)
	}
	v, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("property %s value %q is not a whole number or infinity", name, text)
	}
	return v, nil
}

// timeUnits are systemd's time span units (systemd.time(7)) in microseconds.
var timeUnits = map[string]uint64{
	"us": 1, "usec": 1, "µs": 1,
	"ms": 1000, "msec": 1000,
	"s": 1e6, "sec": 1e6, "second": 1e6, "seconds": 1e6,
	"m": 60e6, "min": 60e6, "minute": 60e6, "minutes": 60e6,
	"h": 3600e6, "hr": 3600e6, "hour": 3600e6, "hours": 3600e6,
	"d": 86400e6, "day": 86400e6, "days": 86400e6,
	"w": 7 * 86400e6, "week": 7 * 86400e6, "weeks": 7 * 86400e6,
}

// parseTimeSpan parses a systemd time span such as "90", "30s", "5min 20s" into
// microseconds. A bare number is seconds, as in unit files.
func parseTimeSpan(name, text string) (uint64, error) {
	var total uint64
	rest := strings.TrimSpace(text)
	if rest == "" {
		return 0, fmt.Errorf("property %s value is empty: give a time span such as 30s", name)
	}
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		number, err := strconv.ParseFloat(rest[:i], 64)
		if i == 0 || err != nil {
			return 0, fmt.Errorf("property %s value %q is not a time span such as 30s or 5min", name, text)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && rest[j] != ' ' && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		unit := rest[:j]
		rest = strings.TrimLeft(rest[j:], " ")
		scale := uint64(time.Second / time.Microsecond)
		if unit != "" {
			var ok bool
			if scale, ok = timeUnits[unit]; !ok {
				return 0, fmt.Errorf("property %s value %q has the unknown time unit %q", name, text, unit)
			}
		}
		total += uint64(math.Round(number * float64(scale)))
	}
	return total, nil
}

// ParseSize parses a size in bytes with an optional K, M, G or T suffix (powers of
// 1024, as systemd and JupyterHub read them), or "infinity".
func ParseSize(name, text string) (uint64, error) {
	if text == "infinity" {
		return math.MaxUint64, nil
	}
	scale := 1.0
	number := text
	if n := len(text); n > 0 {
		switch text[n-1] {
		case 'K', 'k':
			scale = 1 << 10
		case 'M', 'm':
			scale = 1 << 20
		case 'G', 'g':
			scale = 1 << 30
		case 'T', 't':
			scale = 1 << 40
		}
		if scale != 1 {
			number = text[:n-1]
		}
	}
	value, err := strconv.ParseFloat(number, 64)
	if err != nil || value < 0 || math.IsInf(value, 0) || math.IsNaN(value) {
		return 0, fmt.Errorf("property %s value %q is not a size such as 512M, 2G or infinity", name, text)
	}
	return uint64(value * scale), nil
}

// bindPath is the D-Bus form (ssbt) of one BindPaths= entry.
type bindPath struct {
	Source        string
	Destination   string
	IgnoreMissing bool
	MountFlags    uint64
}

// msRec is the kernel's MS_REC mount flag, systemd's default "rbind".
const msRec = 16384

// parseBindPaths parses BindPaths= and BindReadOnlyPaths= entries, each
// "[-]SOURCE[:DESTINATION[:rbind|norbind]]" as in systemd.exec(5).
func parseBindPaths(name string, values []string) ([]bindPath, error) {
	var binds []bindPath
	for _, value := range values {
		for _, entry := range strings.Fields(value) {
			bind := bindPath{MountFlags: msRec}
			if rest, ok := strings.CutPrefix(entry, "-"); ok {
				bind.IgnoreMissing = true
				entry = rest
			}
			parts := strings.Split(entry, ":")
			if len(parts) > 3 || parts[0] == "" {
				return nil, fmt.Errorf("property %s entry %q is invalid: write SOURCE[:DESTINATION[:rbind|norbind]]", name, entry)
			}
			bind.Source, bind.Destination = parts[0], parts[0]
			if len(parts) > 1 && parts[1] != "" {
				bind.Destination = parts[1]
			}
			if len(parts) == 3 {
				switch parts[2] {
				case "rbind":
				case "norbind":
					bind.MountFlags = 0
				default:
					return nil, fmt.Errorf("property %s entry %q has the unknown option %q: use rbind or norbind", name, entry, parts[2])
				}
			}
			if !strings.HasPrefix(bind.Source, "/") || !strings.HasPrefix(bind.Destination, "/") {
				return nil, fmt.Errorf("property %s entry %q is invalid: paths must be absolute", name, entry)
			}
			binds = append(binds, bind)
		}
	}
	return binds, nil
}
