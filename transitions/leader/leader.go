// Package leader elects one replica of modelgate to act, on a coordination.k8s.io/v1
// Lease with client-go's leaderelection, and fences the leader's writes: a write may
// start only while the lease is held, and must end before another replica could take the
// lease over (its last renewal plus the renew deadline, which is shorter than the lease).
// Followers learn the leader's address from the Lease, to forward webhook deliveries.
package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
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
	Leases    coordinationclient.LeasesGetter
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
	Now      func() time.Time
}

// Elector campaigns for the lease and fences writes.
type Elector struct {
	cfg Config

	mu          sync.Mutex
	leading     bool      // between OnStartedLeading and the end of leadership
	renewed     time.Time // when the last successful renewal was sent
	seen        time.Time // when the API last answered a Get or an Update
	holder      string    // the holder identity last observed
	holderAddr  string    // its address, from the Lease's annotation
	leadingFrom time.Time
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
	if cfg.RenewDeadline >= cfg.LeaseDuration {
		return nil, fmt.Errorf("leader election: the renew deadline (%s) must be shorter than the lease (%s)", cfg.RenewDeadline, cfg.LeaseDuration)
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
	lock := &leaseLock{e: e}
	for ctx.Err() == nil {
		done := make(chan struct{})
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: e.cfg.LeaseDuration,
			RenewDeadline: e.cfg.RenewDeadline,
			RetryPeriod:   e.cfg.RetryPeriod,
			Name:          e.cfg.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					defer close(done)
					e.startLeading()
					lead(lctx)
				},
				OnStoppedLeading: func() {},
				OnNewLeader:      e.newLeader,
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		e.mu.Lock()
		e.renewed = time.Time{}
		e.mu.Unlock()
		// Run returns when leadership is lost or ctx ends. It starts OnStartedLeading in
		// a goroutine once it has written the lease with this identity, which sets
		// renewed: then lead runs (or is about to), and its context has ended.
		le.Run(ctx)
		e.mu.Lock()
		acquired := !e.renewed.IsZero()
		e.mu.Unlock()
		if acquired {
			// lead winds down; until it has, its writes may still start, but the fence
			// ends each by the last renewal plus the renew deadline: before the lease
			// can pass to another replica.
			<-done
			e.stopLeading()
			if ctx.Err() != nil {
				e.release(lock)
			}
		}
	}
	return nil
}

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

func (e *Elector) newLeader(identity string) {
	if identity != e.cfg.Identity {
		e.cfg.Logger.Info("following", "leader", identity, "lease", e.cfg.Namespace+"/"+e.cfg.Name)
	}
}

// release gives the lease up (holder emptied, a one-second duration), as client-go's
// ReleaseOnCancel does, but only after this replica's writes have ended.
func (e *Elector) release(lock *leaseLock) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != e.cfg.Identity {
		return
	}
	now := metav1.NewTime(e.cfg.Now())
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now,
		LeaderTransitions: rec.LeaderTransitions}); err != nil {
		e.cfg.Logger.Warn("could not release the lease; another replica takes over when it expires", "error", err)
		return
	}
	e.cfg.Logger.Info("released the lease", "lease", e.cfg.Namespace+"/"+e.cfg.Name)
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
	return fenced, cancel, nil
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

// leaseLock is resourcelock.LeaseLock with two additions: the leader's address in an
// annotation (followers read it), and the time each renewal was sent, for the fence.
type leaseLock struct {
	e     *Elector
	lease *coordinationv1.Lease
}

func (l *leaseLock) leases() coordinationclient.LeaseInterface {
	return l.e.cfg.Leases.Leases(l.e.cfg.Namespace)
}

func (l *leaseLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	lease, err := l.leases().Get(ctx, l.e.cfg.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			l.e.sawAPI()
		}
		return nil, nil, err
	}
	l.lease = lease
	l.e.observed(lease)
	rec := resourcelock.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	raw, err := json.Marshal(rec)
	return rec, raw, err
}

func (l *leaseLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := l.e.cfg.Now()
	lease, err := l.leases().Create(ctx, &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: l.e.cfg.Name, Namespace: l.e.cfg.Namespace, Annotations: l.annotations(nil, rec)},
		Spec:       resourcelock.LeaderElectionRecordToLeaseSpec(&rec),
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.lease = lease
	l.e.wrote(lease, rec, sent)
	return nil
}

func (l *leaseLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if l.lease == nil {
		return errors.New("lease not read yet")
	}
	sent := l.e.cfg.Now()
	next := l.lease.DeepCopy()
	next.Spec = resourcelock.LeaderElectionRecordToLeaseSpec(&rec)
	next.Annotations = l.annotations(next.Annotations, rec)
	lease, err := l.leases().Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.lease = lease
	l.e.wrote(lease, rec, sent)
	return nil
}

// annotations sets the address annotation to the holder's: this replica's when it holds
// the lease, none when it releases it.
func (l *leaseLock) annotations(in map[string]string, rec resourcelock.LeaderElectionRecord) map[string]string {
	out := map[string]string{}
	for k, v := range in {
		out[k] = v
	}
	delete(out, AddressAnnotation)
	if rec.HolderIdentity == l.e.cfg.Identity && l.e.cfg.Address != "" {
		out[AddressAnnotation] = l.e.cfg.Address
	}
	return out
}

func (l *leaseLock) RecordEvent(string) {}
func (l *leaseLock) Identity() string   { return l.e.cfg.Identity }
func (l *leaseLock) Describe() string   { return l.e.cfg.Namespace + "/" + l.e.cfg.Name }

func (e *Elector) sawAPI() {
	e.mu.Lock()
	e.seen = e.cfg.Now()
	e.mu.Unlock()
}

// observed notes the holder and address a Get returned.
func (e *Elector) observed(lease *coordinationv1.Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = e.cfg.Now()
	e.holder, e.holderAddr = "", ""
	if lease.Spec.HolderIdentity != nil {
		e.holder = *lease.Spec.HolderIdentity
		e.holderAddr = lease.Annotations[AddressAnnotation]
	}
}

// wrote notes a successful write of the lease: a renewal by this replica moves the fence.
func (e *Elector) wrote(lease *coordinationv1.Lease, rec resourcelock.LeaderElectionRecord, sent time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = e.cfg.Now()
	e.holder, e.holderAddr = rec.HolderIdentity, lease.Annotations[AddressAnnotation]
	if rec.HolderIdentity == e.cfg.Identity {
		e.renewed = sent
	} else {
		e.renewed = time.Time{}
	}
}
