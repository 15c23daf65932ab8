package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// maxBody bounds a request body; maxPayload a message.
const (
	maxBody    = 4 << 20
	maxPayload = 64 << 10
)

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	refuseIfRemoved := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.removed.Load() {
				writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry,
					Message: fmt.Sprintf("broker %d was removed from the cluster; ask another broker", s.cfg.id)})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST "+pathProduce, refuseIfRemoved(s.handleProduce))
	mux.HandleFunc("GET "+pathConsume, refuseIfRemoved(s.handleConsume))
	mux.HandleFunc("GET "+pathTable, refuseIfRemoved(s.handleTable))
	mux.HandleFunc("POST "+pathMove, refuseIfRemoved(s.handleMove))
	mux.HandleFunc("POST "+pathMembers, refuseIfRemoved(s.handleMembers))
	mux.HandleFunc("GET "+pathStatus, s.handleStatus)
	mux.HandleFunc("POST "+pathPropose, refuseIfRemoved(s.handlePropose))
	mux.HandleFunc("POST "+pathReplicate, refuseIfRemoved(s.handleReplicate))
	mux.HandleFunc("POST "+pathFetch, s.handleFetch)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v; a bad one is answered 400 and counted.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.invalid(w, fmt.Sprintf("bad body: %v", err))
		return false
	}
	return true
}

// invalid answers a request that must not be retried as it is, and counts it.
func (s *server) invalid(w http.ResponseWriter, msg string) {
	s.badRequests.Add(1)
	writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: msg})
}

// atEpoch checks an internal request (replication, handover fetch) for a
// partition against this broker's table: an epoch it has not applied yet
// is answered "retry" (503), an older one "fenced" (409), and a partition
// it does not know "retry" (it may not be applied here yet); refusals are
// counted. No request creates state for a made-up partition or seals one at
// a made-up epoch.
func (s *server) atEpoch(w http.ResponseWriter, name string, epoch uint64) (Partition, bool) {
	p, ok := s.table.View().Get(name)
	switch {
	case !ok || epoch > p.Epoch:
		s.badRequests.Add(1)
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry,
			Message: fmt.Sprintf("broker %d has not applied partition %q at epoch %d (yet)", s.cfg.id, name, epoch)})
		return p, false
	case epoch < p.Epoch:
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: errFenced,
			Message: fmt.Sprintf("broker %d: %s is at epoch %d, not %d", s.cfg.id, name, p.Epoch, epoch)})
		return p, false
	}
	return p, true
}

// redirect sends the client to broker id's API.
func (s *server) redirect(w http.ResponseWriter, id uint64, why string) {
	api := s.table.View().Brokers[id]
	if id == 0 || api == "" {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: fmt.Sprintf("broker %d: %s, and no broker to redirect to yet", s.cfg.id, why)})
		return
	}
	writeJSON(w, http.StatusTemporaryRedirect, ErrorResponse{Error: errRedirect, Broker: id, API: api,
		Message: fmt.Sprintf("broker %d: %s; ask broker %d at %s", s.cfg.id, why, id, api)})
}

// writeErr answers an error of the node or the store.
func (s *server) writeErr(w http.ResponseWriter, err error) {
	var nl *actors.NotLeaderError
	switch {
	case errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != s.cfg.id:
		s.redirect(w, nl.Leader, "not the Raft leader")
	case errors.Is(err, ErrNoPartition), errors.Is(err, ErrNoTopic):
		writeJSON(w, http.StatusNotFound, ErrorResponse{Error: errNotFound, Message: err.Error()})
	case errors.Is(err, ErrBadCommand), errors.Is(err, actors.ErrInvalidMembership):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: errInvalid, Message: err.Error()})
	case errors.Is(err, ErrFenced):
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: errFenced, Message: err.Error()})
	default: // elections, timeouts, handovers, replication: all transient
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: fmt.Sprintf("broker %d: %v", s.cfg.id, err)})
	}
}

// readPartition is the linearizable read that fences writes: it reflects
// every assignment committed before the call.
func (s *server) readPartition(name string) (Partition, error) {
	res, err := actors.Request[*actors.ReadResponse](s.sys.Root, s.broker, &actors.Read{Query: PartitionQuery{Name: name}}, requestTimeout)
	if err != nil {
		return Partition{}, err
	}
	p, ok := res.Result.(Partition)
	if !ok {
		return Partition{}, fmt.Errorf("topics: read answered %T", res.Result)
	}
	return p, nil
}

func (s *server) handleProduce(w http.ResponseWriter, r *http.Request) {
	var req ProduceRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := validTopic(req.Topic); err != nil || req.Producer == 0 || req.Seq == 0 || len(req.Payload) > maxPayload {
		s.invalid(w, fmt.Sprintf("want a valid topic, a non-zero producer and seq, a payload of at most %d bytes (%v)", maxPayload, err))
		return
	}
	name, err := s.partitionOf(req)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// The fence: a linearizable read of the assignment, then the write
	// under the partition's lock, refused unless this broker finished its
	// handover at that very epoch (and no newer owner sealed it since).
	p, err := s.readPartition(name)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if p.Owner != s.cfg.id {
		s.redirect(w, p.Owner, fmt.Sprintf("not the owner of %s", name))
		return
	}
	if !p.Ready {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: fmt.Sprintf("broker %d: %s is being handed over at epoch %d", s.cfg.id, name, p.Epoch)})
		return
	}
	var out ProduceResponse
	err = s.msgs.withPart(name, func(ps *partState) error {
		if ps.ready != p.Epoch {
			return fmt.Errorf("%w: %s: this broker is not the ready owner at epoch %d", actors.ErrRetry, name, p.Epoch)
		}
		res, err := s.msgs.appendLocked(name, ps, Record{Epoch: p.Epoch, Broker: s.cfg.id, Producer: req.Producer,
			Seq: req.Seq, Payload: req.Payload, Accepted: time.Now().UnixNano()})
		if err != nil {
			return err
		}
		out = ProduceResponse{Partition: name, Offset: res.rec.Offset, Epoch: res.rec.Epoch, Broker: res.rec.Broker, Duplicate: res.duplicate}
		if res.duplicate && res.rec.Offset < ps.hw {
			return nil // acknowledged before
		}
		if p.Follower != 0 {
			if err := s.replicateTail(name, ps, p, ps.hw); err != nil {
				return err
			}
		}
		ps.hw = ps.next
		return nil
	})
	switch {
	case errors.Is(err, ErrSeqOutOfOrder):
		s.invalid(w, err.Error())
	case err != nil:
		s.writeErr(w, err)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// partitionOf names the partition a produce request goes to, creating the
// topic (through Raft) when it does not exist.
func (s *server) partitionOf(req ProduceRequest) (string, error) {
	for attempt := 0; ; attempt++ {
		n := 0
		for _, p := range s.table.View().Partitions {
			if p.Topic == req.Topic {
				n++
			}
		}
		if n > 0 {
			i := req.Partition
			if i < 0 {
				i = int(req.Seq % uint64(n))
			}
			if i >= n {
				return "", fmt.Errorf("%w: topic %s has %d partitions", ErrNoPartition, req.Topic, n)
			}
			return PartitionName(req.Topic, i), nil
		}
		if attempt > 0 {
			return "", fmt.Errorf("%w: topic %s created, not applied here yet", actors.ErrRetry, req.Topic)
		}
		err := s.proposeAnywhere(Command{Op: OpCreate, Topic: req.Topic, Partitions: s.cfg.partitions})
		if err != nil && !errors.Is(err, ErrTopicExists) {
			return "", err
		}
		// Wait until this broker has applied it: a linearizable read.
		if _, err := s.readPartition(PartitionName(req.Topic, 0)); err != nil {
			return "", err
		}
	}
}

// maxReplicate bounds the records of one replication request, and
// maxReplicateBytes their encoded size (a follower reads at most maxBody; a
// record with a maxPayload payload encodes in less than 7*maxPayload).
const (
	maxReplicate      = 1000
	maxReplicateBytes = maxBody / 2
)

// replicateTail sends the follower the records [from, next) of the
// partition, in requests of at most maxReplicate records and
// maxReplicateBytes (at least one record), resending from the follower's
// end on a gap.
func (s *server) replicateTail(name string, ps *partState, p Partition, from uint64) error {
	api := s.table.View().Brokers[p.Follower]
	for tries := 0; tries < 3; {
		var recs []Record
		size := 0
		end := min(ps.next, from+maxReplicate)
		if err := s.msgs.scan(name, from, end, func(r Record) bool {
			b, _ := json.Marshal(r)
			if size += len(b) + 1; len(recs) > 0 && size > maxReplicateBytes {
				return false
			}
			recs = append(recs, r)
			return true
		}); err != nil {
			return err
		}
		var resp ReplicateResponse
		code, er, err := s.call(api, pathReplicate, ReplicateRequest{Partition: name, Epoch: p.Epoch, From: from, Records: recs}, &resp)
		switch {
		case err != nil:
			return fmt.Errorf("%w: replicate %s to broker %d: %v", actors.ErrRetry, name, p.Follower, err)
		case code == http.StatusOK && resp.Next >= ps.next:
			return nil
		case code == http.StatusOK && resp.Next > from:
			from = resp.Next // the next chunk
		case code == http.StatusOK:
			tries++
		case er.Error == errGap:
			from = er.Next
			tries++
		case er.Error == errFenced:
			ps.ready = 0 // a newer epoch exists: stop accepting
			return fmt.Errorf("%w: follower %d: %s", ErrFenced, p.Follower, er.Message)
		default:
			return fmt.Errorf("%w: replicate %s to broker %d: %s", actors.ErrRetry, name, p.Follower, er.Message)
		}
	}
	return fmt.Errorf("%w: replicate %s to broker %d: no progress", actors.ErrRetry, name, p.Follower)
}

// call POSTs body to another broker's API and decodes a 200 answer into
// out, or returns the ErrorResponse.
func (s *server) call(api, path string, body, out any) (int, ErrorResponse, error) {
	if api == "" {
		return 0, ErrorResponse{}, errors.New("no API address known")
	}
	b, _ := json.Marshal(body)
	resp, err := s.client.Post("http://"+api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, ErrorResponse{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ErrorResponse{}, json.NewDecoder(resp.Body).Decode(out)
	}
	var er ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er, nil
}

// proposeAnywhere proposes cmd on the local node, or on the leader's
// broker through its API when this node does not lead.
func (s *server) proposeAnywhere(cmd Command) error {
	res, err := actors.ProposeAndWait(s.sys.Root, s.broker, &actors.Propose{Data: cmd.Encode()}, requestTimeout)
	var nl *actors.NotLeaderError
	if errors.As(err, &nl) && nl.Leader != 0 {
		var pr ProposeResult
		code, er, err := s.call(s.table.View().Brokers[nl.Leader], pathPropose, cmd, &pr)
		switch {
		case err != nil:
			return fmt.Errorf("%w: propose through leader %d: %v", actors.ErrRetry, nl.Leader, err)
		case code != http.StatusOK:
			return fmt.Errorf("%w: propose through leader %d: %s", actors.ErrRetry, nl.Leader, er.Message)
		case pr.Error != "":
			return tableError(pr.Error)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if e, ok := res.Result.(error); ok {
		return e
	}
	return nil
}

// tableError maps a refusal carried as text back to its sentinel.
func tableError(msg string) error {
	for _, e := range []error{ErrTopicExists, ErrNoTopic, ErrNoPartition, ErrStaleEpoch, ErrBadCommand} {
		if len(msg) >= len(e.Error()) && msg[:len(e.Error())] == e.Error() {
			return fmt.Errorf("%w%s", e, msg[len(e.Error()):])
		}
	}
	return errors.New(msg)
}

func (s *server) handlePropose(w http.ResponseWriter, r *http.Request) {
	var cmd Command
	if !s.decode(w, r, &cmd) {
		return
	}
	res, err := actors.ProposeAndWait(s.sys.Root, s.broker, &actors.Propose{Data: cmd.Encode()}, requestTimeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := ProposeResult{Index: res.Index}
	if e, ok := res.Result.(error); ok {
		out.Error = e.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) handleConsume(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("partition")
	from, err1 := strconv.ParseUint(cmpOr(q.Get("from"), "0"), 10, 64)
	max, err2 := strconv.Atoi(cmpOr(q.Get("max"), "500"))
	if name == "" || err1 != nil || err2 != nil || max < 1 {
		s.invalid(w, "want ?partition=TOPIC/N&from=OFFSET&max=N (max >= 1)")
		return
	}
	max = min(max, 1000)
	// A linearizable read, as for a write: a former owner (moved away,
	// removed, partitioned) must not serve a stale end of the partition.
	p, err := s.readPartition(name)
	switch {
	case err != nil:
		s.writeErr(w, err)
		return
	case p.Owner != s.cfg.id:
		s.redirect(w, p.Owner, fmt.Sprintf("not the owner of %s", name))
		return
	}
	var ready bool
	_ = s.msgs.withPart(name, func(ps *partState) error { ready = ps.ready == p.Epoch && p.Ready; return nil })
	if !ready {
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: errRetry, Message: fmt.Sprintf("broker %d: %s is being handed over", s.cfg.id, name)})
		return
	}
	recs, hw, err := s.msgs.read(name, from, max)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ConsumeResponse{Partition: name, Records: recs, HighWatermark: hw, Broker: s.cfg.id})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *server) handleTable(w http.ResponseWriter, r *http.Request) {
	res, err := actors.Request[*actors.ReadResponse](s.sys.Root, s.broker, &actors.Read{Query: TableQuery{}}, requestTimeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	v, _ := res.Result.(*View)
	if st, err := actors.Request[*actors.Status](s.sys.Root, s.broker, &actors.GetStatus{}, requestTimeout); err == nil {
		v.Leader, v.Voters = st.Leader, memberIDs(st.Config.GetVoters())
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *server) handleMove(w http.ResponseWriter, r *http.Request) {
	var req MoveRequest
	if !s.decode(w, r, &req) {
		return
	}
	p, err := s.readPartition(req.Partition)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	v := s.table.View()
	if _, ok := v.Brokers[req.Broker]; !ok {
		s.invalid(w, fmt.Sprintf("broker %d is not registered", req.Broker))
		return
	}
	if p.Owner != req.Broker {
		// The old owner holds the data: it becomes the follower.
		follower := p.Owner
		if follower == 0 || follower == req.Broker {
			follower = p.Follower
		}
		if follower == req.Broker {
			follower = 0
		}
		err = s.proposeAnywhere(Command{Op: OpAssign, Why: "operator", Moves: []Move{{Partition: p.Name, Epoch: p.Epoch, Owner: req.Broker, Follower: follower}}})
		if err != nil {
			s.writeErr(w, err)
			return
		}
	}
	if p, err = s.readPartition(req.Partition); err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *server) handleMembers(w http.ResponseWriter, r *http.Request) {
	var req MemberRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.ID == 0 || !req.Remove && (checkAddr(req.Raft) != nil || checkAddr(req.API) != nil) {
		s.invalid(w, "want id, and raft and api addresses (host:port) to add")
		return
	}
	var err error
	if req.Remove {
		_, err = actors.Request[*actors.MembershipResponse](s.sys.Root, s.broker, &actors.RemoveMember{ID: req.ID}, 30*time.Second)
	} else {
		// Register its API first, so that it gets partitions as soon as
		// it is a voter; then add it as a learner, promoted once caught up.
		if err = s.proposeAnywhere(Command{Op: OpRegister, Broker: req.ID, API: req.API}); err == nil {
			_, err = actors.Request[*actors.MembershipResponse](s.sys.Root, s.broker, &actors.AddMember{ID: req.ID, Address: req.Raft, Voter: true}, 30*time.Second)
		}
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.handleStatus(w, r)
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := actors.Request[*actors.Status](s.sys.Root, s.broker, &actors.GetStatus{}, requestTimeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, StatusResponse{ID: s.cfg.id, Role: st.Role.String(), Term: st.Term, Leader: st.Leader,
		Commit: st.Commit, Applied: st.Applied, Voters: memberIDs(st.Config.GetVoters()),
		Learners: memberIDs(st.Config.GetLearners()), Rebalances: s.rebalances.Load(),
		Progress: st.Progress, Peers: st.Peers, Dropped: st.Dropped, Removed: st.Removed,
		BadRequests: s.badRequests.Load()})
}

func (s *server) handleReplicate(w http.ResponseWriter, r *http.Request) {
	var req ReplicateRequest
	if !s.decode(w, r, &req) {
		return
	}
	p, ok := s.atEpoch(w, req.Partition, req.Epoch)
	if !ok {
		return
	}
	if p.Follower != s.cfg.id {
		s.invalid(w, fmt.Sprintf("broker %d is not the follower of %s at epoch %d", s.cfg.id, req.Partition, req.Epoch))
		return
	}
	if len(req.Records) > maxReplicate {
		s.invalid(w, fmt.Sprintf("%d records in one replication, want at most %d", len(req.Records), maxReplicate))
		return
	}
	var next uint64
	err := s.msgs.withPart(req.Partition, func(ps *partState) error {
		var err error
		next, err = s.msgs.replicateLocked(req.Partition, ps, req.Epoch, req.From, req.Records)
		return err
	})
	switch {
	case errors.Is(err, ErrGap):
		writeJSON(w, http.StatusConflict, ErrorResponse{Error: errGap, Next: next, Message: err.Error()})
	case errors.Is(err, ErrBadCommand):
		s.invalid(w, err.Error())
	case err != nil:
		s.writeErr(w, err)
	default:
		writeJSON(w, http.StatusOK, ReplicateResponse{Next: next})
	}
}

func (s *server) handleFetch(w http.ResponseWriter, r *http.Request) {
	var req FetchRequest
	if !s.decode(w, r, &req) {
		return
	}
	if _, ok := s.atEpoch(w, req.Partition, req.Epoch); !ok {
		return
	}
	var recs []Record
	err := s.msgs.withPart(req.Partition, func(ps *partState) error {
		var err error
		recs, err = s.msgs.sealAndRead(req.Partition, ps, req.Epoch)
		return err
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, FetchResponse{Records: recs})
}

// handovers runs on every broker: whenever the table changes (and every
// 200ms), it finishes the handover of each partition this broker owns at
// an epoch it is not ready for yet.
func (s *server) handovers() {
	defer s.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.changed:
		case <-t.C:
		}
		for _, p := range s.table.View().Partitions {
			if p.Owner != s.cfg.id {
				continue
			}
			var done bool
			_ = s.msgs.withPart(p.Name, func(ps *partState) error { done = ps.ready == p.Epoch; return nil })
			if done {
				continue
			}
			if err := s.handover(p); err != nil {
				s.log.Info("handover not finished; retrying", "partition", p.Name, "epoch", p.Epoch, "err", err)
			}
		}
	}
}

// handover makes this broker the ready owner of p at p.Epoch:
//
//  1. copy the partition from a holder of the last ready epoch (itself if
//     it is one), sealing that holder at p.Epoch: from then on it refuses
//     writes and replication of older epochs, so every message the old
//     owner acknowledged is in the copy (a handover run again at an
//     epoch this broker copied at already keeps that copy);
//  2. push the copy to the follower (which seals it too);
//  3. propose ready (compare-and-set on the epoch) and, once committed,
//     accept writes with the partition's high watermark at its end.
//
// When p is ready already (this broker restarted, or stopped accepting
// after its follower refused a replication), only the tail past the high
// watermark is pushed to the follower before it accepts again.
func (s *server) handover(p Partition) error {
	pushed := false // the copy went to the follower
	if !p.Ready {
		if err := s.copyPartition(p); err != nil {
			return err
		}
		pushed = true
		holders := []uint64{s.cfg.id}
		if p.Follower != 0 {
			holders = append(holders, p.Follower)
		}
		if err := s.proposeAnywhere(Command{Op: OpReady, Partition: p.Name, Epoch: p.Epoch, Holders: holders}); err != nil {
			return err
		}
		var err2 error
		if p, err2 = s.readPartition(p.Name); err2 != nil {
			return err2
		}
		if !p.Ready {
			return errors.New("ready not applied")
		}
	}
	if !slices.Contains(p.Holders, s.cfg.id) {
		return fmt.Errorf("ready at epoch %d without this broker among the holders %v", p.Epoch, p.Holders)
	}
	return s.msgs.withPart(p.Name, func(ps *partState) error {
		if ps.sealed > p.Epoch {
			return fmt.Errorf("%w: sealed at %d", ErrFenced, ps.sealed)
		}
		// Ready already (a restart, or this broker stopped accepting when
		// its follower refused a replication): records past the high
		// watermark were never acknowledged; the follower takes them
		// before consumers may read them (or refuses, fenced by a newer
		// owner, and this broker stays not ready).
		if from := min(ps.hw, ps.next); !pushed && p.Follower != 0 && from < ps.next {
			if err := s.replicateTail(p.Name, ps, p, from); err != nil {
				return err
			}
		}
		ps.ready, ps.hw = p.Epoch, ps.next
		s.log.Info("owner of partition", "partition", p.Name, "epoch", p.Epoch, "follower", p.Follower, "messages", ps.next)
		return nil
	})
}

// copyPartition is steps 1 and 2 of a handover of p (not ready): copy the
// partition from a holder, then push it to the follower. A broker that
// copied at p.Epoch already (a handover run again: the ready entry was not
// applied yet, or, after a restart, not re-applied yet) keeps its copy and
// only pushes it: it holds everything acknowledged before p.Epoch, and
// maybe messages it acknowledged itself since, which a holder's copy would
// overwrite with the holder's unacknowledged tail.
func (s *server) copyPartition(p Partition) error {
	var copied bool
	err := s.msgs.withPart(p.Name, func(ps *partState) error {
		if ps.sealed > p.Epoch {
			return fmt.Errorf("%w: sealed at %d", ErrFenced, ps.sealed)
		}
		copied = ps.copied == p.Epoch
		return nil
	})
	if err != nil {
		return err
	}
	var recs []Record
	if !copied {
		var got bool
		if recs, got = s.fetchCopy(p); !got && len(p.Holders) > 0 {
			return fmt.Errorf("no holder of %v answered", p.Holders)
		}
	}
	return s.msgs.withPart(p.Name, func(ps *partState) error {
		if ps.copied != p.Epoch {
			if _, err := s.msgs.replicateLocked(p.Name, ps, p.Epoch, 0, recs); err != nil {
				return err
			}
		}
		if p.Follower != 0 {
			return s.replicateTail(p.Name, ps, p, 0)
		}
		return nil
	})
}

// fetchCopy reads every record of p from a holder of the last ready epoch
// (this broker first), sealing it at p.Epoch; got is false when none
// answered.
func (s *server) fetchCopy(p Partition) (recs []Record, got bool) {
	for _, h := range sortedHolders(p, s.cfg.id) {
		if h == s.cfg.id {
			err := s.msgs.withPart(p.Name, func(ps *partState) error {
				var err error
				recs, err = s.msgs.sealAndRead(p.Name, ps, p.Epoch)
				return err
			})
			if err == nil {
				return recs, true
			}
			continue
		}
		var fr FetchResponse
		code, er, err := s.call(s.table.View().Brokers[h], pathFetch, FetchRequest{Partition: p.Name, Epoch: p.Epoch}, &fr)
		if err == nil && code == http.StatusOK {
			return fr.Records, true
		}
		s.log.Info("handover: holder did not answer", "partition", p.Name, "holder", h, "err", err, "answer", er.Message)
	}
	return nil, false
}

// sortedHolders lists p's holders, this broker first, then the follower.
func sortedHolders(p Partition, self uint64) []uint64 {
	hs := slices.Clone(p.Holders)
	slices.SortStableFunc(hs, func(a, b uint64) int {
		rank := func(x uint64) int {
			switch x {
			case self:
				return 0
			case p.Follower:
				return 1
			}
			return 2
		}
		return rank(a) - rank(b)
	})
	return hs
}
