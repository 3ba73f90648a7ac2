package delivery

import "time"

// Clock is a delivery stream's time source. Every deadline, wait and
// timestamp of the package reads it: the buffer interval, retry backoff and
// retry duration, the dead-letter stream's retries, the consumer's restart
// backoff, lease renewal, status measurements and error times. Tests pass a
// clock they move by hand.
//
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed on this
	// clock. A d of zero or less may fire at once.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the wall clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
