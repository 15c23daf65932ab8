package otlp

import (
	"net"

	"go.opentelemetry.io/otel/attribute"
)

// AttrHostIP is the resource attribute by which Jaeger's query service tells
// hosts apart when it corrects clock skew (its v1 API, which the Jaeger UI reads,
// looks only at a process tag named "ip"). Without it Jaeger treats every span as
// coming from another host than its parent and warns "clock skew adjustment
// disabled" on any child that outlasts its parent, even within one process.
const AttrHostIP = attribute.Key("ip")

// hostIP is the first non-loopback unicast address of this machine (IPv4
// first), or 127.0.0.1 when it has none.
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "127.0.0.1"
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String()
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}
