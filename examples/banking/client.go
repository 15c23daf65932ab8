package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to the ledger's client API. It follows NotLeader redirects
// and retries a command with the same client id and sequence number until
// some server answers, so a command is applied at most once however often
// it is retried. A Client is not safe for concurrent use: give each
// goroutine its own (with its own id).
type Client struct {
	servers []string
	id      uint64
	seq     uint64
	hint    string // the server believed to lead
	next    int    // round-robin position when no hint
	http    *http.Client
	retries int // attempts beyond the first, over the client's life

	// AttemptTimeout bounds one HTTP exchange. Default 5s.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (doubling). Defaults 25ms and 500ms.
	MinBackoff, MaxBackoff time.Duration
}

// NewClient returns a client of servers (API host:port addresses) with a
// random client id.
func NewClient(servers []string) (*Client, error) {
	if len(servers) == 0 {
		return nil, errors.New("no server given: list the servers' API addresses, e.g. --servers 127.0.0.1:8001,127.0.0.1:8002")
	}
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("server %q is not host:port", s)
		}
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := binary.BigEndian.Uint64(b[:])>>11 | 1 // non-zero, below 2^53 (exact in JSON numbers everywhere)
	return &Client{servers: append([]string(nil), servers...), id: id,
		http:           &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		AttemptTimeout: 5 * time.Second, MinBackoff: 25 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}, nil
}

// ID returns the client id.
func (c *Client) ID() uint64 { return c.id }

// Retries returns how many attempts beyond the first the client made, over
// all its requests.
func (c *Client) Retries() int { return c.retries }

// prefer makes server the first one tried by the next request (followers
// serve reads too: through the leader's read index).
func (c *Client) prefer(server string) { c.hint = server }

// APIError is an answer that retrying will not change (a bad request, an
// unknown account).
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

// OutcomeUnknownError: the client gave up on a command that may have
// reached a server. It was applied at most once; retrying it with the same
// client id and sequence is safe and tells.
type OutcomeUnknownError struct {
	ClientID, Seq uint64
	Last          error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("the outcome of command %d of client %d is unknown: no server confirmed it before the deadline (last problem: %v); it was applied at most once", e.Seq, e.ClientID, e.Last)
}

// UnavailableError: the client gave up and the request was never taken by
// a server (a command was not applied).
type UnavailableError struct {
	Last    error
	Command bool // the request was a command
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("no server could serve the request before the deadline (last problem: %v)", e.Last)
	if e.Command {
		msg += "; the command was not applied"
	}
	return msg
}

// Command applies cmd with the next sequence number. Retries use the same
// number. A refused command (insufficient funds, ...) is a CommandResponse
// whose Result is not OK, not an error.
func (c *Client) Command(ctx context.Context, cmd Command) (*CommandResponse, error) {
	if err := cmd.Validate(); err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: errInvalid, Message: err.Error()}
	}
	c.seq++
	body, _ := json.Marshal(CommandRequest{ClientID: c.id, Seq: c.seq, Command: cmd})
	var out CommandResponse
	if err := c.do(ctx, http.MethodPost, pathCommands, nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AddServer adds server id (at raftAddr, already started with --join) as
// a learner and, when voter, promotes it once it has caught up. expected,
// when non-zero, makes the change conditional on the configuration index
// in force (StatusResponse.ConfigIndex). It waits for the final
// configuration to commit, catch-up included (up to a minute per attempt).
// A retry after a lost answer finds the server already added and succeeds.
func (c *Client) AddServer(ctx context.Context, id uint64, raftAddr string, voter bool, expected uint64) (*MemberResponse, error) {
	body, _ := json.Marshal(MemberRequest{ID: id, RaftAddr: raftAddr, Voter: voter, ExpectedConfigIndex: expected})
	var out MemberResponse
	if err := c.slow().do(ctx, http.MethodPost, pathMembers, nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveServer removes server id (the leader too: it hands over), with
// expected as for AddServer.
func (c *Client) RemoveServer(ctx context.Context, id uint64, expected uint64) (*MemberResponse, error) {
	q := url.Values{"id": {fmt.Sprint(id)}}
	if expected != 0 {
		q.Set("expected_config_index", fmt.Sprint(expected))
	}
	var out MemberResponse
	if err := c.slow().do(ctx, http.MethodDelete, pathMembers, q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// slow returns a copy of c whose attempts may last as long as a
// membership change (the server's own bound, plus a margin).
func (c *Client) slow() *Client {
	cp := *c
	cp.AttemptTimeout = max(c.AttemptTimeout, memberTimeout+5*time.Second)
	return &cp
}

// Balance reads one account's balance (linearizable).
func (c *Client) Balance(ctx context.Context, account string) (*BalanceResponse, error) {
	var out BalanceResponse
	if err := c.do(ctx, http.MethodGet, pathBalance, url.Values{"account": {account}}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Balances reads every balance (linearizable).
func (c *Client) Balances(ctx context.Context) (*BalancesResponse, error) {
	var out BalancesResponse
	if err := c.do(ctx, http.MethodGet, pathBalances, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StaleBalances reads one server's local balances, without Raft.
func (c *Client) StaleBalances(ctx context.Context, server string) (*BalancesResponse, error) {
	var out BalancesResponse
	if _, _, err := c.once(ctx, http.MethodGet, server, pathBalances, url.Values{"stale": {"true"}}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Status asks one server for its status (no retry).
func (c *Client) Status(ctx context.Context, server string) (*StatusResponse, error) {
	var out StatusResponse
	code, er, err := c.once(ctx, http.MethodGet, server, pathStatus, nil, nil, &out)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d: %s", server, code, er.Message)
	}
	return &out, nil
}

// do runs one request against the cluster until an answer that retrying
// will not change, or until ctx ends. ctx is checked between attempts; an
// attempt already sent runs to its answer or to AttemptTimeout.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	maybeTaken := false // could any attempt have been taken (proposed) by a server?
	var last error
	backoff := c.MinBackoff
	redirects := 0
	wait := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(2*backoff, c.MaxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	giveUp := func() error {
		if last == nil {
			last = ctx.Err()
		}
		if path == pathCommands && maybeTaken {
			var req CommandRequest
			_ = json.Unmarshal(body.([]byte), &req)
			return &OutcomeUnknownError{ClientID: req.ClientID, Seq: req.Seq, Last: last}
		}
		return &UnavailableError{Last: last, Command: path == pathCommands}
	}
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return giveUp()
		}
		if attempt > 0 {
			c.retries++
		}
		target := c.hint
		if target == "" {
			target = c.servers[c.next%len(c.servers)]
		}
		code, er, err := c.once(ctx, method, target, path, q, body, out)
		switch {
		case err != nil:
			if !isDialError(err) {
				maybeTaken = true
			}
			last = err
			c.hint = ""
			c.next++
			if !wait() {
				return giveUp()
			}
		case code == http.StatusOK:
			c.hint = target
			return nil
		case code == http.StatusTemporaryRedirect:
			last = fmt.Errorf("%s: %s", target, er.Message)
			if er.LeaderAPI != "" && er.LeaderAPI != target {
				c.hint = er.LeaderAPI
				if redirects++; redirects <= len(c.servers) {
					continue // follow at once; back off only when redirects loop
				}
			} else {
				c.hint = ""
				c.next++
			}
			if !wait() {
				return giveUp()
			}
		case code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout || code == http.StatusInternalServerError:
			if er.Error != errNoLeader {
				maybeTaken = true
			}
			last = fmt.Errorf("%s: %s", target, er.Message)
			c.hint = ""
			c.next++
			if !wait() {
				return giveUp()
			}
		default:
			return &APIError{Status: code, Code: er.Error, Message: er.Message}
		}
	}
}

// once makes one HTTP exchange with server. A 200 answer is decoded into
// out; any other into the returned ErrorResponse.
func (c *Client) once(ctx context.Context, method, server, path string, q url.Values, body, out any) (int, ErrorResponse, error) {
	var er ErrorResponse
	// An attempt in flight is not cut short by ctx (only by
	// AttemptTimeout): the answer tells whether the server took the
	// command, an abandoned exchange would not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.AttemptTimeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: server, Path: path, RawQuery: q.Encode()}
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, er, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, er, fmt.Errorf("%s: %w", server, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, er, fmt.Errorf("%s: reading the answer: %w", server, err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return 0, er, fmt.Errorf("%s: undecodable answer: %v", server, err)
		}
		return resp.StatusCode, er, nil
	}
	if err := json.Unmarshal(data, &er); err != nil || er.Error == "" {
		er = ErrorResponse{Error: errInternal, Message: fmt.Sprintf("%s answered HTTP %d: %s", server, resp.StatusCode, strings.TrimSpace(string(data)))}
	}
	return resp.StatusCode, er, nil
}

// unwrapURLError drops net/http's "Post "url": " prefix.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isDialError reports whether err happened before the request could reach
// the server (the connection was never made).
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
