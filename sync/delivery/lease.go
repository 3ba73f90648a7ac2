package delivery

import (
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Lease upkeep while a batch is retried for longer than Consume's lease:
// Consume renews between calls only, so the delivery stream renews the
// shard's lease itself when less than leaseRenewAt is left.
const (
	leaseTTL     = 30 * time.Second
	leaseRenewAt = 20 * time.Second
)

// leaseKeeper is the lease a batch in flight checkpoints with; it renews
// its own copy.
type leaseKeeper struct {
	shard string
	lease stream.Lease
}

// renew extends the shard's lease when it runs low. A lease that was taken
// over stays as it is: the checkpoint then fails with ErrLeaseLost and the
// shard restarts from its checkpoint, rebuilding the same batch.
func (d *Stream) renew(lk *leaseKeeper) {
	if lk.lease.Token == 0 || lk.lease.Expires.Sub(d.cfg.Clock.Now()) > leaseRenewAt {
		return
	}
	l, err := d.store.RenewLease(lk.lease, leaseTTL)
	if err != nil {
		d.log.Warn("renewing the shard lease", "shard", lk.shard, "err", err)
		return
	}
	lk.lease = l
}
