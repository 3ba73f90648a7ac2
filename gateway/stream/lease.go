package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

type leaseValue struct {
	Owner     string `json:"owner"`
	ExpiresMs int64  `json:"expires_ms"`
	Token     uint64 `json:"token"`
}

func (s *Store) groupKeys(group, stream, shardID string) (ck, lk []byte, err error) {
	if group == "" || len(group) > 256 {
		return nil, nil, fmt.Errorf("%w: consumer group %q: want 1-256 bytes", ErrInvalidArgument, group)
	}
	_, sh, _, err := s.shardOf(stream, shardID)
	if err != nil {
		return nil, nil, err
	}
	return groupKey(kindCheckpoint, sh.owner.id, group, shardID), groupKey(kindLease, sh.owner.id, group, shardID), nil
}

func getLease(txn *badger.Txn, lk []byte) (leaseValue, bool, error) {
	var lv leaseValue
	it, err := txn.Get(lk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return lv, false, nil
	}
	if err != nil {
		return lv, false, err
	}
	err = it.Value(func(v []byte) error { return json.Unmarshal(v, &lv) })
	return lv, err == nil, err
}

func setLease(txn *badger.Txn, lk []byte, lv leaseValue) error {
	b, _ := json.Marshal(lv)
	return txn.Set(lk, b)
}

// Checkpoint records that group has processed shardID up to and including
// seq, durably. With a lease (Token != 0) it fails with ErrLeaseLost unless
// that lease is still held; a zero Lease skips the check.
func (s *Store) Checkpoint(lease Lease, group, stream, shardID, seq string) error {
	ck, lk, err := s.groupKeys(group, stream, shardID)
	if err != nil {
		return err
	}
	_, sh, _, _ := s.shardOf(stream, shardID)
	if _, err := seqInShard(seq, sh); err != nil {
		return err
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	err = s.db.Update(func(txn *badger.Txn) error {
		if lease.Token != 0 {
			lv, ok, err := getLease(txn, lk)
			if err != nil {
				return err
			}
			if !ok || lv.Owner != lease.Owner || lv.Token != lease.Token || lv.ExpiresMs < s.now().UnixMilli() {
				return fmt.Errorf("%w: %s/%s for group %s", ErrLeaseLost, stream, shardID, group)
			}
		}
		return txn.Set(ck, []byte(seq))
	})
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("stream: checkpoint: %w", err)
	}
	return err
}

// GetCheckpoint returns the group's checkpoint for a shard, "" if none.
func (s *Store) GetCheckpoint(group, stream, shardID string) (string, error) {
	ck, _, err := s.groupKeys(group, stream, shardID)
	if err != nil {
		return "", err
	}
	var seq string
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(ck)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		seq = string(v)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("stream: get checkpoint: %w", err)
	}
	return seq, nil
}

// AcquireLease takes the shard for owner for ttl, unless another owner holds
// an unexpired lease (ErrLeaseHeld). Taking a lease, even one's own again,
// gives it a new token.
func (s *Store) AcquireLease(group, stream, shardID, owner string, ttl time.Duration) (Lease, error) {
	_, lk, err := s.groupKeys(group, stream, shardID)
	if err != nil {
		return Lease{}, err
	}
	if owner == "" || ttl <= 0 {
		return Lease{}, fmt.Errorf("%w: a lease needs an owner and a positive ttl", ErrInvalidArgument)
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	now := s.now()
	var out Lease
	err = s.db.Update(func(txn *badger.Txn) error {
		lv, ok, err := getLease(txn, lk)
		if err != nil {
			return err
		}
		if ok && lv.Owner != owner && lv.ExpiresMs >= now.UnixMilli() {
			return fmt.Errorf("%w: %s/%s is held by %s until %s", ErrLeaseHeld, stream, shardID, lv.Owner, time.UnixMilli(lv.ExpiresMs).Format(time.RFC3339))
		}
		nv := leaseValue{Owner: owner, ExpiresMs: now.Add(ttl).UnixMilli(), Token: lv.Token + 1}
		out = Lease{Group: group, Stream: stream, ShardID: shardID, Owner: owner, Expires: time.UnixMilli(nv.ExpiresMs), Token: nv.Token}
		return setLease(txn, lk, nv)
	})
	if err != nil && !errors.Is(err, ErrLeaseHeld) {
		return Lease{}, fmt.Errorf("stream: acquire lease: %w", err)
	}
	return out, err
}

// RenewLease extends a held lease; ErrLeaseLost if it expired and was taken
// over, or was released.
func (s *Store) RenewLease(l Lease, ttl time.Duration) (Lease, error) {
	_, lk, err := s.groupKeys(l.Group, l.Stream, l.ShardID)
	if err != nil {
		return Lease{}, err
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	now := s.now()
	err = s.db.Update(func(txn *badger.Txn) error {
		lv, ok, err := getLease(txn, lk)
		if err != nil {
			return err
		}
		if !ok || lv.Owner != l.Owner || lv.Token != l.Token {
			return fmt.Errorf("%w: %s/%s for group %s", ErrLeaseLost, l.Stream, l.ShardID, l.Group)
		}
		lv.ExpiresMs = now.Add(ttl).UnixMilli()
		l.Expires = time.UnixMilli(lv.ExpiresMs)
		return setLease(txn, lk, lv)
	})
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		return Lease{}, fmt.Errorf("stream: renew lease: %w", err)
	}
	return l, err
}

// ReleaseLease gives a lease up; releasing a lease one no longer holds is
// not an error.
func (s *Store) ReleaseLease(l Lease) error {
	_, lk, err := s.groupKeys(l.Group, l.Stream, l.ShardID)
	if err != nil {
		return err
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	err = s.db.Update(func(txn *badger.Txn) error {
		lv, ok, err := getLease(txn, lk)
		if err != nil || !ok || lv.Owner != l.Owner || lv.Token != l.Token {
			return err
		}
		lv.ExpiresMs = 0
		return setLease(txn, lk, lv)
	})
	if err != nil {
		return fmt.Errorf("stream: release lease: %w", err)
	}
	return nil
}
