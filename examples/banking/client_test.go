package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a scripted client API: answer decides each reply to a
// command; every request is recorded.
type fakeServer struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []CommandRequest
	answer func(n int, req CommandRequest) (int, any) // n: 0-based request number
}

func newFakeServer(t *testing.T, answer func(n int, req CommandRequest) (int, any)) *fakeServer {
	f := &fakeServer{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req CommandRequest
		if r.URL.Path == pathCommands {
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				t.Errorf("fake server: undecodable body: %v", err)
			}
		}
		f.mu.Lock()
		n := len(f.seen)
		f.seen = append(f.seen, req)
		f.mu.Unlock()
		code, body := f.answer(n, req)
		writeJSON(w, code, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) addr() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeServer) requests() []CommandRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CommandRequest(nil), f.seen...)
}

func applied(req CommandRequest) (int, any) {
	return http.StatusOK, CommandResponse{Index: 10, Term: 2, Node: 2, Result: Result{Code: CodeOK, Balances: map[string]int64{req.From: 1, req.To: 2}}}
}

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func testClient(t *testing.T, servers ...string) *Client {
	c, err := NewClient(servers)
	if err != nil {
		t.Fatal(err)
	}
	c.MinBackoff, c.MaxBackoff, c.AttemptTimeout = time.Millisecond, 5*time.Millisecond, 2*time.Second
	return c
}

var transfer = Command{Op: OpTransfer, From: "a", To: "b", Amount: 1}

func TestClientFollowsRedirectToLeader(t *testing.T) {
	leader := newFakeServer(t, func(int, CommandRequest) (int, any) { return 0, nil })
	leader.answer = func(_ int, req CommandRequest) (int, any) { return applied(req) }
	follower := newFakeServer(t, func(int, CommandRequest) (int, any) {
		return http.StatusTemporaryRedirect, ErrorResponse{Error: errNotLeader, Message: "node 1 is not the leader", LeaderID: 2, LeaderAPI: leader.addr()}
	})
	c := testClient(t, follower.addr(), leader.addr())
	for i := range 3 {
		res, err := c.Command(context.Background(), transfer)
		if err != nil || !res.Result.OK() {
			t.Fatalf("command %d: %v %+v", i, err, res)
		}
	}
	if n := len(follower.requests()); n != 1 {
		t.Errorf("the follower got %d requests, want 1 (later commands go to the known leader)", n)
	}
	got := leader.requests()
	if len(got) != 3 {
		t.Fatalf("the leader got %d requests, want 3", len(got))
	}
	for i, r := range got {
		if r.ClientID != c.ID() || r.Seq != uint64(i+1) {
			t.Errorf("request %d carried client %d seq %d, want client %d seq %d", i, r.ClientID, r.Seq, c.ID(), i+1)
		}
	}
}

// Every retry of one command carries the same client id and sequence, over
// every kind of transient failure; the next command gets the next number.
func TestClientRetriesWithSameSequence(t *testing.T) {
	dead := deadAddr(t)
	flaky := newFakeServer(t, func(n int, req CommandRequest) (int, any) {
		switch n {
		case 0:
			return http.StatusGatewayTimeout, ErrorResponse{Error: errOutcomeUnknown, Message: "did not learn the outcome"}
		case 1:
			return http.StatusServiceUnavailable, ErrorResponse{Error: errNoLeader, Message: "no leader"}
		case 2:
			return http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: "stopping"}
		}
		return applied(req)
	})
	c := testClient(t, dead, flaky.addr())
	if _, err := c.Command(context.Background(), transfer); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command(context.Background(), transfer); err != nil {
		t.Fatal(err)
	}
	got := flaky.requests()
	if len(got) != 5 {
		t.Fatalf("%d requests reached the server, want 4 for the first command and 1 for the second", len(got))
	}
	for i, r := range got {
		want := uint64(1)
		if i == 4 {
			want = 2
		}
		if r.ClientID != c.ID() || r.Seq != want {
			t.Errorf("request %d: client %d seq %d, want client %d seq %d", i, r.ClientID, r.Seq, c.ID(), want)
		}
	}
}

func TestClientDoesNotRetryBadRequests(t *testing.T) {
	s := newFakeServer(t, func(int, CommandRequest) (int, any) {
		return http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: "the amount is out of range"}
	})
	c := testClient(t, s.addr())
	_, err := c.Command(context.Background(), transfer)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != errInvalid || ae.Message != "the amount is out of range" {
		t.Fatalf("error %v, want the server's APIError", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	// Invalid commands never leave the client.
	if _, err := c.Command(context.Background(), Command{Op: OpTransfer, From: "a", To: "a", Amount: 1}); !errors.As(err, &ae) {
		t.Fatalf("error %v, want an APIError from local validation", err)
	}
}

// Giving up says whether the command may have been applied.
func TestClientGivesUpWithClearOutcome(t *testing.T) {
	t.Run("never reached a server", func(t *testing.T) {
		c := testClient(t, deadAddr(t), deadAddr(t))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Command(ctx, transfer)
		var ue *UnavailableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "the command was not applied") {
			t.Fatalf("error %v, want UnavailableError naming the refused connection and saying the command was not applied", err)
		}
	})
	t.Run("redirect loop", func(t *testing.T) {
		var a, b *fakeServer
		a = newFakeServer(t, func(int, CommandRequest) (int, any) {
			return http.StatusTemporaryRedirect, ErrorResponse{Error: errNotLeader, Message: "ask b", LeaderAPI: b.addr()}
		})
		b = newFakeServer(t, func(int, CommandRequest) (int, any) {
			return http.StatusTemporaryRedirect, ErrorResponse{Error: errNotLeader, Message: "ask a", LeaderAPI: a.addr()}
		})
		c := testClient(t, a.addr(), b.addr())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Command(ctx, transfer)
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("error %v, want UnavailableError (a redirect is never applied)", err)
		}
	})
	t.Run("maybe applied", func(t *testing.T) {
		s := newFakeServer(t, func(int, CommandRequest) (int, any) {
			return http.StatusGatewayTimeout, ErrorResponse{Error: errOutcomeUnknown, Message: "did not learn the outcome"}
		})
		c := testClient(t, s.addr())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Command(ctx, transfer)
		var ou *OutcomeUnknownError
		if !errors.As(err, &ou) || ou.ClientID != c.ID() || ou.Seq != 1 {
			t.Fatalf("error %v, want OutcomeUnknownError for client %d seq 1", err, c.ID())
		}
		if !strings.Contains(err.Error(), "applied at most once") {
			t.Errorf("the message should say the command was applied at most once: %v", err)
		}
	})
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		args    string
		want    Command
		wantErr string
	}{
		{"open alice", Command{Op: OpOpen, Account: "alice"}, ""},
		{"open alice 100", Command{Op: OpOpen, Account: "alice", Amount: 100}, ""},
		{"deposit alice 5", Command{Op: OpDeposit, Account: "alice", Amount: 5}, ""},
		{"withdraw alice 5", Command{Op: OpWithdraw, Account: "alice", Amount: 5}, ""},
		{"transfer alice bob 5", Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 5}, ""},
		{"transfer alice bob", Command{}, "takes 3 argument(s): FROM TO AMOUNT"},
		{"deposit alice ten", Command{}, `amount "ten" is not a whole number`},
		{"deposit alice -5", Command{}, "out of range"},
		{"withdraw alice", Command{}, "NAME AMOUNT"},
		{"open", Command{}, "open takes NAME [AMOUNT]"},
		{"rob alice", Command{}, `unknown command "rob"`},
		{"transfer alice alice 1", Command{}, "to itself"},
	}
	for _, tt := range tests {
		got, err := parseCommand(strings.Fields(tt.args))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

// TestClientCLI runs the client subcommand against a fake server: its
// output is a sentence, refusals and failures too (never a stack trace).
func TestClientCLI(t *testing.T) {
	s := newFakeServer(t, func(_ int, req CommandRequest) (int, any) {
		if req.Amount > 100 {
			return http.StatusOK, CommandResponse{Index: 11, Term: 2, Result: Result{Code: CodeInsufficientFunds,
				Message: `account "alice" holds 100, less than 500`, Balances: map[string]int64{"alice": 100, "bob": 0}}}
		}
		return http.StatusOK, CommandResponse{Index: 10, Term: 2, Result: Result{Code: CodeOK, Balances: map[string]int64{"alice": 90, "bob": 10}}}
	})
	tests := []struct {
		args       []string
		code       int
		out, errIs string
	}{
		{[]string{"transfer", "alice", "bob", "10"}, 0, "transferred 10 from alice to bob: alice 90, bob 10 (log index 10, term 2", ""},
		{[]string{"transfer", "alice", "bob", "500"}, 1, "", `banking client: transfer refused: account "alice" holds 100, less than 500`},
		{[]string{"transfer", "alice", "bob"}, 2, "", "banking client: transfer takes 3 argument(s)"},
		{[]string{"--servers", "nonsense", "status"}, 2, "", `server "nonsense" is not host:port`},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		args := append([]string{"--servers", s.addr(), "--timeout", "2s"}, tt.args...)
		code := runClient(args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errb.String(), tt.errIs) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tt.args, code, out.String(), errb.String(), tt.code, tt.out, tt.errIs)
		}
	}
}

func TestParseServerFlags(t *testing.T) {
	base := "--id 1 --listen 127.0.0.1:7001 --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data d"
	tests := []struct {
		args    string
		wantErr []string // every one must appear
		check   func(*serverConfig) string
	}{
		{base + " --insecure", nil, func(c *serverConfig) string {
			if c.api != "127.0.0.1:8001" || c.peerAPIs[2] != "127.0.0.1:8002" || c.peerAPIs[3] != "127.0.0.1:8003" {
				return "API addresses not derived as Raft port + 1000"
			}
			return ""
		}},
		{base + " --insecure --api 10.0.0.1:9000 --peer-api 2=10.0.0.2:9000", nil, func(c *serverConfig) string {
			if c.apiAdvertise != "10.0.0.1:9000" || c.peerAPIs[2] != "10.0.0.2:9000" || c.peerAPIs[3] != "127.0.0.1:8003" {
				return "explicit API addresses not used"
			}
			return ""
		}},
		{"--id 1 --listen 0.0.0.0:7001 --advertise 10.0.0.1:7001 --peers 2=10.0.0.2:7001 --data d --insecure", nil, func(c *serverConfig) string {
			if c.api != "0.0.0.0:8001" || c.apiAdvertise != "10.0.0.1:8001" {
				return "wildcard API address not advertised with the --advertise host: " + c.apiAdvertise
			}
			return ""
		}},
		{base, []string{"--ca, --cert and --key", "--insecure"}, nil},
		{base + " --insecure --ca ca.pem", []string{"exclusive"}, nil},
		{"--listen nonsense --insecure", []string{"--id is required", "--data is required", "--listen \"nonsense\"", "--peers is required"}, nil},
		{"--id 1 --listen 127.0.0.1:7001 --peers 1=127.0.0.1:7002 --data d --insecure", []string{"own id 1"}, nil},
		{"--id 1 --listen 127.0.0.1:7001 --peers 2=x --data d --insecure", []string{`"2=x"`}, nil},
		{base + " --insecure --peer-api 9=127.0.0.1:1", []string{"node 9, which is not in --peers"}, nil},
		{base + " --insecure --peer-api 2", []string{"--peer-api: \"2\" is not id=host:port"}, nil},
		{base + " --insecure --tick 0s --election-ticks 1", []string{"--tick", "--election-ticks"}, nil},
		{"--id 1 --listen 127.0.0.1:65000 --peers 2=127.0.0.1:65001 --data d --insecure", []string{"set --api", "--peer-api"}, nil},
		{"--id 1 --listen 127.0.0.1:65000 --api 127.0.0.1:65100 --peers 2=127.0.0.1:65001 --peer-api 2=127.0.0.1:65101 --data d --insecure", nil,
			func(c *serverConfig) string {
				if c.api != "127.0.0.1:65100" || c.peerAPIs[2] != "127.0.0.1:65101" {
					return "explicit high API ports not used"
				}
				return ""
			}},
	}
	for _, tt := range tests {
		var errb bytes.Buffer
		c, err := parseServerFlags(strings.Fields(tt.args), &errb)
		if len(tt.wantErr) > 0 {
			if err == nil {
				t.Errorf("%q: no error, want %q", tt.args, tt.wantErr)
				continue
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %q does not mention %q", tt.args, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if msg := tt.check(c); msg != "" {
			t.Errorf("%q: %s", tt.args, msg)
		}
	}
}
