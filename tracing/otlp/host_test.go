package otlp_test

import (
	"context"
	"net"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing/otlp"
	"go.opentelemetry.io/otel/attribute"
)

// The resource names the host's address as "ip", which Jaeger's clock-skew
// adjuster needs to tell hosts apart; an explicit attribute wins.
func TestResourceHostIP(t *testing.T) {
	res, err := otlp.Resource(context.Background(), otlp.Options{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := res.Set().Value(otlp.AttrHostIP)
	if !ok || net.ParseIP(v.AsString()) == nil {
		t.Fatalf("resource ip = %q (present %v), want an address", v.String(), ok)
	}
	res, err = otlp.Resource(context.Background(), otlp.Options{Attributes: []attribute.KeyValue{otlp.AttrHostIP.String("10.1.2.3")}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.Set().Value(otlp.AttrHostIP); v.AsString() != "10.1.2.3" {
		t.Fatalf("resource ip = %q, want the application's 10.1.2.3", v.String())
	}
}
