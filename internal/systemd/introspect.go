package systemd

import (
	"context"
	"encoding/xml"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// probeUnitPath is the object path of a service unit that is never created. Asking
// systemd to introspect it loads a "not-found" placeholder, which still lists every
// property of a service with its D-Bus type.
const probeUnitPath = "/org/freedesktop/systemd1/unit/sdspawner_2dintrospection_2dprobe_2eservice"

// PropertyTypes returns the D-Bus signature of every property that a service unit has
// in this systemd, from the Unit, Service and resource-control interfaces. Asking
// systemd itself keeps the types right for every systemd version, including properties
// that did not exist when sdspawner was written.
func (c *Conn) PropertyTypes(ctx context.Context) (map[string]string, error) {
	var data string
	err := c.rawConn().Object("org.freedesktop.systemd1", probeUnitPath).
		CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&data)
	if err != nil {
		return nil, fmt.Errorf("introspect systemd's service properties: %w", err)
	}
	return parsePropertyTypes(data)
}

func parsePropertyTypes(data string) (map[string]string, error) {
	var node introspect.Node
	if err := xml.Unmarshal([]byte(data), &node); err != nil {
		return nil, fmt.Errorf("parse systemd's introspection data: %w", err)
	}
	types := make(map[string]string)
	for _, iface := range node.Interfaces {
		if iface.Name != "org.freedesktop.systemd1.Unit" && iface.Name != "org.freedesktop.systemd1.Service" {
			continue
		}
		for _, property := range iface.Properties {
			if _, err := dbus.ParseSignature(property.Type); err == nil {
				types[property.Name] = property.Type
			}
		}
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("systemd's introspection data lists no service properties")
	}
	return types, nil
}
