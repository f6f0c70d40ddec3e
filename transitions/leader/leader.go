// Package leader elects one replica of modelgate to act, on a coordination.k8s.io/v1
// Lease, and fences the leader's writes: a write may start only while the lease is held,
// and must end before another replica could take the lease over (its last renewal plus
// the renew deadline, which is shorter than the lease). Followers learn the leader's
// address from the Lease, to forward webhook deliveries.
//
// The election follows client-go's leaderelection (the same Lease fields, the same
// timings, expiry judged on this replica's clock from when it last saw the Lease change)
// but talks to the API through a client for Leases alone: client-go's package links every
// Kubernetes API type through its clientset, which cost modelgate about 24 MB of binary
// and 10 MB of resident memory for one object.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AddressAnnotation on the Lease holds the leader's address (host:port), for followers.
const AddressAnnotation = "modelgate.io/leader-address"

// ErrNotLeader is the fence's answer when this replica does not hold the lease, or its
// hold is too old to start a write that would end in time.
var ErrNotLeader = errors.New("not the leader: only the replica holding the lease writes to MLflow")

// Observer is told about leadership (*metrics.Metrics satisfies it).
type Observer interface {
	Leader(leading bool)
	LeadershipChange()
}

// Config configures an Elector.
type Config struct {
	Leases    Leases
	Namespace string
	Name      string // the Lease's name
	Identity  string // this replica's holder identity (POD_NAME)
	Address   string // where followers reach this replica (host:port)

	// LeaseDuration is how long a lease holds without renewal; RenewDeadline how long the
	// leader keeps trying to renew before it stops acting, and RetryPeriod the pause
	// between tries. Defaults: 15 s, 10 s, 2 s (client-go's controllers use the same).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	Logger   *slog.Logger
	Observer Observer
	Now      func() time.Time // the real clock (time.Now by default): timers run beside it
}

// Elector campaigns for the lease and fences writes.
type Elector struct {
	cfg Config

	// Touched only by Run's goroutine.
	observedRV   string    // the Lease's resourceVersion last seen
	observedTime time.Time // when this replica saw it change
	lastErr      string    // the last API error logged (each logged once)

	mu          sync.Mutex
	leading     bool      // from the first acquisition to the end of leadership
	renewed     time.Time // when the last successful renewal was sent
	seen        time.Time // when the API last answered a Get or an Update
	holder      string    // the holder identity last observed
	holderAddr  string    // its address, from the Lease's annotation
	leadingFrom time.Time
	open        int // fences handed out and not yet cancelled
}

// Leases reads and writes Lease objects; *LeaseClient does it on the Kubernetes API.
type Leases interface {
	Get(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error)
	Create(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error)
	Update(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error)
}

// New checks the configuration and returns an Elector.
func New(cfg Config) (*Elector, error) {
	switch {
	case cfg.Leases == nil:
		return nil, errors.New("leader election: no Kubernetes client")
	case cfg.Name == "" || cfg.Namespace == "" || cfg.Identity == "":
		return nil, errors.New("leader election: the lease name, its namespace and this replica's identity are required")
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = cfg.LeaseDuration * 2 / 3
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = cfg.LeaseDuration * 2 / 15
	}
	// The Lease holds whole seconds: the fence must end before what is written does.
	written := cfg.LeaseDuration.Truncate(time.Second)
	switch {
	case written < time.Second:
		return nil, fmt.Errorf("leader election: the lease (%s) must be at least one second (a Lease counts whole seconds)", cfg.LeaseDuration)
	case cfg.RenewDeadline >= written:
		return nil, fmt.Errorf("leader election: the renew deadline (%s) must be shorter than the lease (%s, as the Lease holds it)", cfg.RenewDeadline, written)
	case float64(cfg.RenewDeadline) <= 1.2*float64(cfg.RetryPeriod):
		return nil, fmt.Errorf("leader election: the renew deadline (%s) must be longer than 1.2 retry periods (%s), as client-go requires", cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Elector{cfg: cfg}, nil
}

// Run campaigns for the lease until ctx ends. Each time this replica becomes the leader
// it calls lead with a context that ends when the leadership does, and waits for lead to
// return before it campaigns again. When ctx ends while it leads, it waits for lead to
// return (its writes done) and then releases the lease, so that another replica takes
// over at once instead of after the lease expires.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	for ctx.Err() == nil {
		if !e.acquire(ctx) {
			return nil // ctx ended
		}
		e.startLeading()
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			lead(lctx)
		}()
		e.renew(ctx)
		// Leadership is lost (or ctx ended): lead winds down. Until it has, its writes may
		// still start, but the fence ends each by the last renewal plus the renew
		// deadline: before the lease can pass to another replica.
		cancel()
		<-done
		e.stopLeading()
		if ctx.Err() != nil {
			e.awaitFences()
			e.release()
		}
	}
	return nil
}

// acquire tries for the lease every retry period (with client-go's jitter) until it
// holds it (true) or ctx ends (false).
func (e *Elector) acquire(ctx context.Context) bool {
	e.cfg.Logger.Info("campaigning for the lease", "lease", e.describe(), "identity", e.cfg.Identity)
	for {
		if ok, _ := e.tryAcquireOrRenew(ctx); ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(jitter(e.cfg.RetryPeriod)):
		}
	}
}

// renew renews the lease every retry period while this replica leads; it returns when a
// renewal has not succeeded within the renew deadline, or ctx ends.
func (e *Elector) renew(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(e.cfg.RetryPeriod):
		}
		if !e.renewOnce(ctx) {
			if ctx.Err() == nil {
				e.cfg.Logger.Warn("could not renew the lease within the renew deadline", "lease", e.describe(), "renew_deadline", e.cfg.RenewDeadline)
			}
			return
		}
	}
}

// renewOnce tries to renew, again every retry period, for at most the renew deadline;
// it gives up at once when the Lease names another holder.
func (e *Elector) renewOnce(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RenewDeadline)
	defer cancel()
	for {
		ok, lost := e.tryAcquireOrRenew(rctx)
		if ok {
			return true
		}
		if lost {
			e.cfg.Logger.Warn("the lease names another holder", "lease", e.describe())
			return false
		}
		select {
		case <-rctx.Done():
			return false
		case <-time.After(e.cfg.RetryPeriod):
		}
	}
}

// tryAcquireOrRenew reads the Lease and writes this replica into it when the Lease is
// free, expired or already this replica's. A lease held by another replica counts as
// expired once it has not changed for its duration on this replica's clock (clocks of
// different machines are never compared). A concurrent write by another replica fails
// on the resourceVersion, and this one tries again later.
//
// It also reports whether the Lease names another replica that still holds it: a leader
// that sees that has lost the lease, and stops at once.
func (e *Elector) tryAcquireOrRenew(ctx context.Context) (acquired, heldByOther bool) {
	// now is taken before the request: a renewal counts from when it was sent, so that
	// the fence never outlasts what other replicas see.
	now := e.cfg.Now()
	lease, err := e.cfg.Leases.Get(ctx, e.cfg.Namespace, e.cfg.Name)
	// answered is taken after: a Lease that changed is seen as changed no earlier than
	// its answer arrived (a slow answer must not make another's lease look older).
	answered := e.cfg.Now()
	switch {
	case apierrors.IsNotFound(err):
		e.sawAPI()
		fresh := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: e.cfg.Name, Namespace: e.cfg.Namespace}}
		fresh.Spec = e.spec(now, now, 0)
		fresh.Annotations = e.annotations(nil, true)
		created, err := e.cfg.Leases.Create(ctx, fresh)
		if apierrors.IsAlreadyExists(err) {
			e.cfg.Logger.Debug("another replica created the lease first", "lease", e.describe())
			return false, false
		}
		if err != nil {
			e.apiError("could not create the lease", err)
			return false, false
		}
		e.wrote(created, now)
		return true, false
	case err != nil:
		e.apiError("could not read the lease", err)
		return false, false
	}
	e.lastErr = ""
	e.observed(lease, answered)

	holder := deref(lease.Spec.HolderIdentity)
	duration := time.Duration(deref(lease.Spec.LeaseDurationSeconds)) * time.Second
	if holder != "" && holder != e.cfg.Identity && answered.Before(e.observedTime.Add(duration)) {
		return false, true // another replica's, and not expired
	}
	acquiredAt, transitions := now, deref(lease.Spec.LeaseTransitions)
	if holder == e.cfg.Identity && lease.Spec.AcquireTime != nil {
		acquiredAt = lease.Spec.AcquireTime.Time
	} else {
		transitions++
	}
	next := lease.DeepCopy()
	next.Spec = e.spec(acquiredAt, now, transitions)
	next.Annotations = e.annotations(next.Annotations, true)
	updated, err := e.cfg.Leases.Update(ctx, next)
	if err != nil {
		if apierrors.IsConflict(err) {
			e.cfg.Logger.Debug("another replica wrote the lease first", "lease", e.describe())
			return false, false
		}
		e.apiError("could not write the lease", err)
		return false, false
	}
	e.wrote(updated, now)
	return true, false
}

// spec is the Lease's spec with this replica as the holder.
func (e *Elector) spec(acquired, renewed time.Time, transitions int32) coordinationv1.LeaseSpec {
	return coordinationv1.LeaseSpec{
		HolderIdentity:       ptr(e.cfg.Identity),
		LeaseDurationSeconds: ptr(int32(e.cfg.LeaseDuration / time.Second)),
		AcquireTime:          &metav1.MicroTime{Time: acquired},
		RenewTime:            &metav1.MicroTime{Time: renewed},
		LeaseTransitions:     ptr(transitions),
	}
}

// apiError logs an error of the Kubernetes API once, until the API answers again or the
// error changes (a follower tries every retry period).
func (e *Elector) apiError(msg string, err error) {
	if err.Error() == e.lastErr {
		return
	}
	e.lastErr = err.Error()
	e.cfg.Logger.Warn(msg, "lease", e.describe(), "error", err)
}

func (e *Elector) describe() string { return e.cfg.Namespace + "/" + e.cfg.Name }

func (e *Elector) startLeading() {
	e.mu.Lock()
	e.leading, e.leadingFrom = true, e.cfg.Now()
	e.mu.Unlock()
	e.cfg.Logger.Info("leading: this replica now decides and writes", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
	if e.cfg.Observer != nil {
		e.cfg.Observer.Leader(true)
		e.cfg.Observer.LeadershipChange()
	}
}

func (e *Elector) stopLeading() {
	e.mu.Lock()
	e.leading, e.leadingFrom = false, time.Time{}
	e.mu.Unlock()
	e.cfg.Logger.Warn("stopped leading: this replica no longer writes", "lease", e.cfg.Namespace+"/"+e.cfg.Name, "identity", e.cfg.Identity)
	if e.cfg.Observer != nil {
		e.cfg.Observer.Leader(false)
		e.cfg.Observer.LeadershipChange()
	}
}

// release gives the lease up (holder emptied, a one-second duration), as client-go's
// ReleaseOnCancel does, but only after this replica's writes have ended.
func (e *Elector) release() {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	lease, err := e.cfg.Leases.Get(ctx, e.cfg.Namespace, e.cfg.Name)
	if err != nil || deref(lease.Spec.HolderIdentity) != e.cfg.Identity {
		return
	}
	now := metav1.NewMicroTime(e.cfg.Now())
	next := lease.DeepCopy()
	next.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr(""), LeaseDurationSeconds: ptr(int32(1)),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: lease.Spec.LeaseTransitions}
	next.Annotations = e.annotations(next.Annotations, false)
	if _, err := e.cfg.Leases.Update(ctx, next); err != nil {
		e.cfg.Logger.Warn("could not release the lease; another replica takes over when it expires", "error", err)
		return
	}
	e.cfg.Logger.Info("released the lease", "lease", e.describe())
}

// Fence is checked before every write: it returns a context that ends when this
// replica's hold on the lease could lapse (its last renewal plus the renew deadline), or
// ErrNotLeader.
func (e *Elector) Fence(ctx context.Context) (context.Context, context.CancelFunc, error) {
	e.mu.Lock()
	leading, renewed := e.leading, e.renewed
	e.mu.Unlock()
	deadline := renewed.Add(e.cfg.RenewDeadline)
	if !leading || renewed.IsZero() || !e.cfg.Now().Before(deadline) {
		return ctx, func() {}, ErrNotLeader
	}
	fenced, cancel := context.WithDeadline(ctx, deadline)
	e.mu.Lock()
	e.open++
	e.mu.Unlock()
	var once sync.Once
	return fenced, func() {
		cancel()
		once.Do(func() {
			e.mu.Lock()
			e.open--
			e.mu.Unlock()
		})
	}, nil
}

// awaitFences waits, before the lease is released, for the writes fenced outside lead
// (the notifier's) to end: at the latest when their fence does, the last renewal plus
// the renew deadline. Released earlier, another replica could begin while one is on
// the wire.
func (e *Elector) awaitFences() {
	e.mu.Lock()
	deadline := e.renewed.Add(e.cfg.RenewDeadline)
	e.mu.Unlock()
	for {
		e.mu.Lock()
		open := e.open
		e.mu.Unlock()
		if open == 0 || !e.cfg.Now().Before(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leading reports whether this replica leads now.
func (e *Elector) Leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// LeadingSince is when this replica became the leader (zero when it does not lead).
func (e *Elector) LeadingSince() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leadingFrom
}

// Leader is the holder last observed and its address ("" when unknown).
func (e *Elector) Leader() (identity, address string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder, e.holderAddr
}

// Identity is this replica's holder identity.
func (e *Elector) Identity() string { return e.cfg.Identity }

// Healthy reports whether the Kubernetes API answered within the last two lease
// durations (a follower asks every retry period).
func (e *Elector) Healthy() error {
	e.mu.Lock()
	seen := e.seen
	e.mu.Unlock()
	if seen.IsZero() {
		return errors.New("the Kubernetes API has not answered yet")
	}
	if age := e.cfg.Now().Sub(seen); age > 2*e.cfg.LeaseDuration {
		return fmt.Errorf("the Kubernetes API has not answered for %s", age.Round(time.Second))
	}
	return nil
}

// annotations sets the address annotation to this replica's when it holds the lease,
// and removes it when it releases the lease.
func (e *Elector) annotations(in map[string]string, holding bool) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		out[k] = v
	}
	delete(out, AddressAnnotation)
	if holding && e.cfg.Address != "" {
		out[AddressAnnotation] = e.cfg.Address
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func ptr[T any](v T) *T { return &v }

// jitter is client-go's wait.Jitter with its leader election factor, 1.2: a period
// between d and 2.2 d, so that replicas started together do not keep colliding.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Float64()*1.2*float64(d))
}

func (e *Elector) sawAPI() {
	e.mu.Lock()
	e.seen = e.cfg.Now()
	e.mu.Unlock()
}

// observed notes a Lease read: its holder and address, and when it last changed.
func (e *Elector) observed(lease *coordinationv1.Lease, now time.Time) {
	if lease.ResourceVersion != e.observedRV {
		e.observedRV, e.observedTime = lease.ResourceVersion, now
	}
	holder := deref(lease.Spec.HolderIdentity)
	e.mu.Lock()
	changed := holder != e.holder
	e.seen = e.cfg.Now()
	e.holder, e.holderAddr = holder, ""
	if holder != "" {
		e.holderAddr = lease.Annotations[AddressAnnotation]
	}
	e.mu.Unlock()
	if changed && holder != "" && holder != e.cfg.Identity {
		e.cfg.Logger.Info("following", "leader", holder, "lease", e.describe())
	}
}

// wrote notes a successful write of the lease with this replica as its holder: the
// renewal, sent at sent, moves the fence.
func (e *Elector) wrote(lease *coordinationv1.Lease, sent time.Time) {
	e.observedRV, e.observedTime = lease.ResourceVersion, sent
	e.lastErr = ""
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = e.cfg.Now()
	e.holder, e.holderAddr = e.cfg.Identity, lease.Annotations[AddressAnnotation]
	e.renewed = sent
}
