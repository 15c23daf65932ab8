package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/netutil"
)

// TestAPILimits: the client API closes connections that send their
// request slowly, that never send one, and that sit idle after a
// response, and serves at most maxConns connections at once. Without the
// limits, 2,000 slow-body and 2,000 idle connections held for 20 s were
// never closed.
func TestAPILimits(t *testing.T) {
	lim := apiLimits{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: time.Second,
		idle: 300 * time.Millisecond, maxConns: 4}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newAPIServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	}), lim)
	go srv.Serve(netutil.LimitListener(ln, lim.maxConns))
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin fails unless the server closes c within d.
	closedWithin := func(what string, c net.Conn, d time.Duration) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(d))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open after %v", what, d)
		}
		t.Logf("%s: closed by the server after %v", what, time.Since(start).Round(time.Millisecond))
	}

	// A body that never finishes.
	slow := dial()
	fmt.Fprintf(slow, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
	// Headers that never finish.
	noHeaders := dial()
	fmt.Fprintf(noHeaders, "GET /x HTTP/1.1\r\nHost: x\r\n")
	// A keep-alive connection left idle after one request.
	idle := dial()
	fmt.Fprintf(idle, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A fourth connection fills the cap: a fifth is not served until one
	// of the others is closed.
	dial()
	fifth := dial()
	fmt.Fprintf(fifth, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

	closedWithin("slow body", slow, 5*time.Second)
	closedWithin("unfinished headers", noHeaders, 5*time.Second)
	closedWithin("idle keep-alive", idle, 5*time.Second)
	fifth.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(fifth), nil); err != nil {
		t.Fatalf("the fifth connection was not served once others closed: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestAPILimitsCap: with maxConns connections held, one more is not
// served.
func TestAPILimitsCap(t *testing.T) {
	lim := apiLimits{readHeader: 10 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: 10 * time.Second, maxConns: 2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newAPIServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }), lim)
	go srv.Serve(netutil.LimitListener(ln, lim.maxConns))
	t.Cleanup(func() { srv.Close() })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	extra, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	extra.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := http.ReadResponse(bufio.NewReader(extra), nil); err == nil {
		t.Fatal("a connection over the cap was served")
	}
	held[0].Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(extra), nil); err != nil {
		t.Fatalf("not served after a held connection closed: %v", err)
	}
}
