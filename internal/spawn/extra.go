package spawn

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/systemd"
	"github.com/sdspawner/sdspawner/internal/unitname"
)

// propertyTypes returns systemd's D-Bus type of every service property, asked once and
// then kept, because it only changes when systemd is upgraded and re-executed.
func (s *Service) propertyTypes(ctx context.Context) (map[string]string, error) {
	s.mu.Lock()
	types := s.types
	s.mu.Unlock()
	if types != nil {
		return types, nil
	}
	types, err := s.sd.PropertyTypes(ctx)
	if err != nil {
		return nil, newError(KindUnavailable, "%w", err)
	}
	s.mu.Lock()
	s.types = types
	s.mu.Unlock()
	return types, nil
}

// extraValues returns the text values of one entry of option: a string is one value, a
// list is one value an entry.
func extraValues(option, name string, raw any) ([]string, error) {
	switch v := raw.(type) {
	case string:
		return []string{v}, nil
	case []any:
		values := make([]string, len(v))
		for i, item := range v {
			text, ok := item.(string)
			if !ok {
				return nil, invalidf("%s: %s[%d] is %T, not a string", option, name, i, item)
			}
			values[i] = text
		}
		return values, nil
	}
	return nil, invalidf("%s: %s is %T; give a string or a list of strings", option, name, raw)
}

// extraProperties checks and converts the hub's unit_extra_properties, in name order.
// Templates are expanded in every value, list entries included.
func (s *Service) extraProperties(ctx context.Context, extra map[string]any, vars unitname.Vars) ([]systemd.Property, error) {
	return s.convertProperties(ctx, "unit_extra_properties", extra, vars, s.checkHubProperty)
}

// siteProperties converts the admin's site_properties, with the same rules for values.
func (s *Service) siteProperties(ctx context.Context, vars unitname.Vars) ([]systemd.Property, error) {
	return s.convertProperties(ctx, "site_properties", s.cfg.SiteProperties, vars, func(written, dbusName string, _ []string) error {
		if err := policy.CheckSiteProperty(written, dbusName); err != nil {
			return newError(KindInternal, "%w; fix the daemon's configuration", err)
		}
		return nil
	})
}

// CheckSiteProperties converts the admin's site_properties once, so that a property
// this systemd does not know, or a value it cannot take, stops the daemon at startup
// with the key named, instead of failing every start.
func (s *Service) CheckSiteProperties(ctx context.Context) error {
	vars := unitname.Vars{UserName: "user", UserID: "1", ServerName: ""}
	if _, err := s.siteProperties(ctx, vars); err != nil {
		return fmt.Errorf("daemon configuration: %w", err)
	}
	return nil
}

// CheckAllowedProperties returns a warning for each entry of properties.allow that is
// not a property of this systemd's services, with the right name when only its case
// differs. Such an entry allows nothing. It is not an error, because a configuration
// may be shared by machines whose systemd versions know different properties.
func (s *Service) CheckAllowedProperties(ctx context.Context) ([]string, error) {
	if len(s.cfg.Properties.Allow) == 0 {
		return nil, nil
	}
	types, err := s.propertyTypes(ctx)
	if err != nil {
		return nil, err
	}
	var warnings []string
	for _, name := range s.cfg.Properties.Allow {
		if _, ok := types[name]; ok {
			continue
		}
		warning := fmt.Sprintf("properties.allow entry %q is not a property of this systemd's services, so it allows nothing", name)
		for known := range types {
			if strings.EqualFold(known, name) {
				warning = fmt.Sprintf("properties.allow entry %q allows nothing: property names are case-sensitive; write %q", name, known)
				break
			}
		}
		warnings = append(warnings, warning)
	}
	sort.Strings(warnings)
	return warnings, nil
}

// checkHubProperty applies the never-allowed list and the allow-list to one of the
// hub's properties.
func (s *Service) checkHubProperty(written, dbusName string, values []string) error {
	if err := s.cfg.CheckExtraProperty(written, dbusName, values); err != nil {
		return newError(KindForbidden, "%w", err)
	}
	return nil
}

// convertProperties turns a map of property names to text values into typed unit
// properties, checking each with check. option names the map in error messages.
func (s *Service) convertProperties(ctx context.Context, option string, extra map[string]any, vars unitname.Vars,
	check func(written, dbusName string, values []string) error) ([]systemd.Property, error) {
	if len(extra) == 0 {
		return nil, nil
	}
	types, err := s.propertyTypes(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)

	props := make([]systemd.Property, 0, len(names))
	for _, name := range names {
		values, err := extraValues(option, name, extra[name])
		if err != nil {
			return nil, err
		}
		for i, value := range values {
			values[i] = unitname.Expand(value, vars, func(s string) string { return s })
		}
		if option == "unit_extra_properties" {
			if err := policy.CheckNeverAllowed(name); err != nil {
				return nil, newError(KindForbidden, "%w", err)
			}
		}
		dbusName, ok := systemd.ResolveName(name, types)
		if !ok {
			return nil, invalidf("%s: %s is not a property of systemd services in this systemd; check the spelling in systemd.exec(5) and systemd.resource-control(5)", option, name)
		}
		if err := check(name, dbusName, values); err != nil {
			return nil, err
		}
		value, err := systemd.ParseValue(dbusName, types[dbusName], values)
		if err != nil {
			return nil, invalidf("%s: %w", option, err)
		}
		props = append(props, systemd.MakeProperty(dbusName, value))
	}
	return props, nil
}

// mergeProperties returns base with every property of extra appended, where a
// property of extra replaces one of the same name in base.
func mergeProperties(base, extra []systemd.Property) []systemd.Property {
	override := make(map[string]bool, len(extra))
	for _, p := range extra {
		override[p.Name] = true
	}
	merged := make([]systemd.Property, 0, len(base)+len(extra))
	for _, p := range base {
		if !override[p.Name] {
			merged = append(merged, p)
		}
	}
	return append(merged, extra...)
}

// checkSlice returns a warning when slice has no unit file or drop-in. systemd makes up
// a missing slice with default settings, so the start works, but any limits the admin
// meant to put on that slice are not there.
func (s *Service) checkSlice(ctx context.Context, slice string) (string, error) {
	state, err := s.sd.LoadState(ctx, slice)
	if err != nil {
		return "", newError(KindUnavailable, "read state of slice %s: %w", slice, err)
	}
	builtin := slice == "-.slice" || slice == "system.slice"
	if state.Loaded() && (state.FragmentPath != "" || len(state.DropInPaths) > 0 || builtin) {
		return "", nil
	}
	return fmt.Sprintf("slice %s has no unit file, so systemd creates it without limits; add /etc/systemd/system/%s to set them", slice, slice), nil
}
