package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes that the configuration file writes as a string such as
// "8G" or "512M" (K, M, G, T are powers of 1024), or as a plain integer.
type Size uint64

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(text []byte) error {
	value := strings.TrimSpace(string(text))
	scale := uint64(1)
	if n := len(value); n > 0 {
		if i := strings.IndexByte("KMGT", value[n-1]&^0x20); i >= 0 {
			scale = 1 << (10 * (i + 1))
			value = value[:n-1]
		}
	}
	number, err := strconv.ParseFloat(value, 64)
	if err != nil || number < 0 {
		return fmt.Errorf("size %q is invalid: write a number of bytes or a size such as 8G", text)
	}
	*s = Size(number * float64(scale))
	return nil
}

// Duration is a length of time that the configuration file writes as a Go duration
// string such as "30s" or "2m".
type Duration time.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(text []byte) error {
	value, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return fmt.Errorf("duration %q is invalid: write a duration such as 30s or 2m", text)
	}
	*d = Duration(value)
	return nil
}

// String writes s the way the configuration does: with the largest of K, M, G and T
// (powers of 1024) that divides it, else in bytes.
func (s Size) String() string {
	units := []string{"T", "G", "M", "K"}
	for i, unit := range units {
		factor := uint64(1) << (10 * (len(units) - i))
		if s != 0 && uint64(s)%factor == 0 {
			return strconv.FormatUint(uint64(s)/factor, 10) + unit
		}
	}
	return strconv.FormatUint(uint64(s), 10)
}
