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
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Client talks to the brokers: it goes to the broker it last found owning
// a partition, follows redirects (to the owner, or to the Raft leader),
// and retries transient failures on any broker until its context ends.
// Produce is idempotent: each message carries the client's producer id and
// a sequence number per partition, and the owner answers a retry with the
// offset it stored the first time. A Client is safe for concurrent use;
// its Produce calls to one partition are sent one at a time.
type Client struct {
	servers []string
	http    *http.Client
	// Backoff is the wait between retries. Default 50ms.
	Backoff  time.Duration
	producer uint64

	mu     sync.Mutex
	next   int               // round-robin start among servers
	owners map[string]string // partition → the API of its last known owner
	seq    map[string]uint64 // topic/partition key → last sequence sent
	// sending holds a one-slot channel per topic/partition key, full
	// while a Produce to it is in flight: a partition's messages go one at
	// a time, in sequence order (the owner refuses a sequence number below
	// the last one it stored for the producer).
	sending map[string]chan struct{}
	// Retries counts redirects followed and transient failures retried.
	retries int
}

// ErrUnavailable: no broker answered in time.
var ErrUnavailable = errors.New("topics: brokers unavailable")

// APIError is a non-retryable answer of a broker.
type APIError struct {
	Status int
	ErrorResponse
}

func (e *APIError) Error() string {
	return fmt.Sprintf("topics: %s (%d): %s", e.ErrorResponse.Error, e.Status, e.Message)
}

// NewClient returns a client of the brokers at servers (API addresses).
func NewClient(servers []string) (*Client, error) {
	if len(servers) == 0 {
		return nil, errors.New("topics: give at least one broker API address")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Client{servers: servers, http: &http.Client{Timeout: 5 * time.Second}, Backoff: 50 * time.Millisecond,
		producer: binary.BigEndian.Uint64(b[:]) | 1, owners: map[string]string{}, seq: map[string]uint64{},
		sending: map[string]chan struct{}{}}, nil
}

// SetServers replaces the brokers the client starts from (the owners it
// found stay known).
func (c *Client) SetServers(servers []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.servers = slices.Clone(servers)
}

// Producer is the client's producer id.
func (c *Client) Producer() uint64 { return c.producer }

// Retries returns how many redirects and retries the client made.
func (c *Client) Retries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retries
}

// Produce appends payload to partition of topic (negative: the broker
// picks by sequence number) and returns the acknowledgement. Calls for one
// partition (or one topic, when partition is negative) wait for each
// other: each is sent once the previous one returned. On an error the
// message may or may not be stored; calling Produce again after an error
// would use a new sequence number, so retry with ProduceSeq.
func (c *Client) Produce(ctx context.Context, topic string, partition int, payload string) (*ProduceResponse, error) {
	key := fmt.Sprintf("%s/%d", topic, partition)
	c.mu.Lock()
	slot := c.sending[key]
	if slot == nil {
		slot = make(chan struct{}, 1)
		c.sending[key] = slot
	}
	c.mu.Unlock()
	select {
	case slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v (waiting for an earlier message to %s)", ErrUnavailable, ctx.Err(), key)
	}
	defer func() { <-slot }()
	c.mu.Lock()
	c.seq[key]++
	seq := c.seq[key]
	c.mu.Unlock()
	return c.ProduceSeq(ctx, ProduceRequest{Topic: topic, Partition: partition, Producer: c.producer, Seq: seq, Payload: payload})
}

// ProduceSeq sends req, retrying until acknowledged or ctx ends. The
// caller picks the sequence number: per partition, it sends the next one
// only once this one is acknowledged (a number below the last one the
// owner stored for the producer is refused, an *APIError).
func (c *Client) ProduceSeq(ctx context.Context, req ProduceRequest) (*ProduceResponse, error) {
	var out ProduceResponse
	hint := ""
	if req.Partition >= 0 {
		hint = PartitionName(req.Topic, req.Partition)
	}
	err := c.do(ctx, http.MethodPost, pathProduce, nil, req, &out, hint)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Consume returns up to max acknowledged records of partition from
// offset from, and the partition's high watermark.
func (c *Client) Consume(ctx context.Context, partition string, from uint64, max int) (*ConsumeResponse, error) {
	var out ConsumeResponse
	q := url.Values{"partition": {partition}, "from": {fmt.Sprint(from)}, "max": {fmt.Sprint(max)}}
	return &out, c.do(ctx, http.MethodGet, pathConsume, q, nil, &out, partition)
}

// Table returns the assignment table (a linearizable read).
func (c *Client) Table(ctx context.Context) (*View, error) {
	var out View
	return &out, c.do(ctx, http.MethodGet, pathTable, nil, nil, &out, "")
}

// Move gives partition to broker (through the leader).
func (c *Client) Move(ctx context.Context, partition string, broker uint64) (*Partition, error) {
	var out Partition
	return &out, c.do(ctx, http.MethodPost, pathMove, nil, MoveRequest{Partition: partition, Broker: broker}, &out, "")
}

// AddBroker adds a broker (started with --join) to the cluster as a voter,
// once it has caught up.
func (c *Client) AddBroker(ctx context.Context, id uint64, raftAddr, api string) (*StatusResponse, error) {
	var out StatusResponse
	return &out, c.do(ctx, http.MethodPost, pathMembers, nil, MemberRequest{ID: id, Raft: raftAddr, API: api}, &out, "")
}

// RemoveBroker removes a broker from the cluster.
func (c *Client) RemoveBroker(ctx context.Context, id uint64) (*StatusResponse, error) {
	var out StatusResponse
	return &out, c.do(ctx, http.MethodPost, pathMembers, nil, MemberRequest{ID: id, Remove: true}, &out, "")
}

// Status asks one broker for its status (no retries).
func (c *Client) Status(ctx context.Context, server string) (*StatusResponse, error) {
	var out StatusResponse
	code, er, err := c.once(ctx, http.MethodGet, server, pathStatus, nil, nil, &out)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, &APIError{Status: code, ErrorResponse: er}
	}
	return &out, nil
}

// remember notes api as the owner of partition.
func (c *Client) remember(partition, api string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owners[partition] = api
}

// do sends a request until a broker answers 200 (decoded into out) or a
// non-retryable error, or ctx ends. partition, when known, picks the
// broker last found owning it.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any, partition string) error {
	c.mu.Lock()
	server := c.owners[partition]
	if server == "" {
		server = c.servers[c.next%len(c.servers)]
		c.next++
	}
	c.mu.Unlock()
	var last string
	redirects := 0 // in a row: more than 3 (views changing under us) back off too
	for {
		code, er, err := c.once(ctx, method, server, path, q, body, out)
		switch {
		case err == nil && code == http.StatusOK:
			if partition != "" {
				c.remember(partition, server)
			}
			return nil
		case err == nil && code == http.StatusTemporaryRedirect && er.API != "" && redirects < 3:
			redirects++
			server = er.API
			if partition != "" {
				c.remember(partition, server)
			}
			c.count()
			continue
		case err == nil && code != http.StatusServiceUnavailable && code != http.StatusConflict && code != http.StatusTemporaryRedirect:
			return &APIError{Status: code, ErrorResponse: er}
		case err != nil:
			last = err.Error()
		default:
			last = er.Message
		}
		// Transient: wait, then try the next broker.
		redirects = 0
		c.count()
		t := time.NewTimer(c.Backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %v (last: %s)", ErrUnavailable, ctx.Err(), last)
		case <-t.C:
		}
		c.mu.Lock()
		if partition != "" && c.owners[partition] == server {
			delete(c.owners, partition)
		}
		server = c.servers[c.next%len(c.servers)]
		c.next++
		c.mu.Unlock()
	}
}

func (c *Client) count() {
	c.mu.Lock()
	c.retries++
	c.mu.Unlock()
}

// once makes one request to one server.
func (c *Client) once(ctx context.Context, method, server, path string, q url.Values, body, out any) (int, ErrorResponse, error) {
	u := url.URL{Scheme: "http", Host: server, Path: path, RawQuery: q.Encode()}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, ErrorResponse{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, ErrorResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, ErrorResponse{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ErrorResponse{}, dec.Decode(out)
	}
	var er ErrorResponse
	if err := dec.Decode(&er); err != nil {
		er = ErrorResponse{Error: errInternal, Message: fmt.Sprintf("HTTP %d with an undecodable body", resp.StatusCode)}
	}
	return resp.StatusCode, er, nil
}
