package leader_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/modelgate/modelgate/transitions/leader"
)

// What a real API server cannot be made to do on demand (answer one read slowly, go
// away for one replica only), on an in-memory Lease store with the API server's
// resourceVersion conflicts.

var leases = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

type leaseStore struct {
	mu    sync.Mutex
	lease *coordinationv1.Lease
	rv    int
}

// replicaView is one replica's path to the store: it can be cut, and its next read
// delayed.
type replicaView struct {
	s         *leaseStore
	cut       atomic.Bool
	slowOnce  atomic.Int64 // delay of the next Get before it reads, in nanoseconds
	afterSlow func()       // runs once the slow Get has read the Lease
}

var errCut = errors.New("connection refused")

func (v *replicaView) Get(_ context.Context, _, name string) (*coordinationv1.Lease, error) {
	if v.cut.Load() {
		return nil, errCut
	}
	slow := time.Duration(v.slowOnce.Swap(0))
	time.Sleep(slow) // the request waits in the API server's queue
	v.s.mu.Lock()
	var out *coordinationv1.Lease
	if v.s.lease != nil {
		out = v.s.lease.DeepCopy()
	}
	v.s.mu.Unlock()
	if slow > 0 && v.afterSlow != nil {
		v.afterSlow()
	}
	if out == nil {
		return nil, apierrors.NewNotFound(leases, name)
	}
	return out, nil
}

func (v *replicaView) Create(_ context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	if v.cut.Load() {
		return nil, errCut
	}
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if v.s.lease != nil {
		return nil, apierrors.NewAlreadyExists(leases, l.Name)
	}
	return v.s.put(l), nil
}

func (v *replicaView) Update(_ context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	if v.cut.Load() {
		return nil, errCut
	}
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if v.s.lease == nil || v.s.lease.ResourceVersion != l.ResourceVersion {
		return nil, apierrors.NewConflict(leases, l.Name, errors.New("the object has been modified"))
	}
	return v.s.put(l), nil
}

func (s *leaseStore) put(l *coordinationv1.Lease) *coordinationv1.Lease {
	s.rv++
	s.lease = l.DeepCopy()
	s.lease.ResourceVersion = strconv.Itoa(s.rv)
	return s.lease.DeepCopy()
}

func electorOn(t *testing.T, v leader.Leases, identity string, lease time.Duration) *leader.Elector {
	t.Helper()
	e, err := leader.New(leader.Config{Leases: v, Namespace: "default", Name: "modelgate", Identity: identity, LeaseDuration: lease})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// run campaigns until the test ends; leading is closed when lead starts and ended when
// lead's context does.
func run(t *testing.T, e *leader.Elector) (leading, ended chan struct{}, stop func()) {
	leading, ended = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		_ = e.Run(ctx, func(lctx context.Context) {
			once.Do(func() { close(leading) })
			<-lctx.Done()
			select {
			case <-ended:
			default:
				close(ended)
			}
		})
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return leading, ended, stop
}

// waitLeading polls until e leads (or not), for a minute at most.
func waitLeading(t *testing.T, e *leader.Elector, want bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); e.Leading() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestSlowAnswerDoesNotAgeTheLease: a follower whose read of the Lease is answered late
// must judge the lease's age from when the answer arrived. Judged from when it asked,
// the leader's latest renewal looks older than it is, and the follower takes over while
// the leader's fence is still open (the leader here loses the API server just after, but
// not MLflow: both would write).
func TestSlowAnswerDoesNotAgeTheLease(t *testing.T) {
	s := &leaseStore{}
	lv, fv := &replicaView{s: s}, &replicaView{s: s}
	l, f := electorOn(t, lv, "leader", 3*time.Second), electorOn(t, fv, "follower", 3*time.Second)
	leading, _, _ := run(t, l)
	within(t, leading, "the first replica to lead")
	fv.slowOnce.Store(int64(2500 * time.Millisecond))
	fv.afterSlow = func() { lv.cut.Store(true) }
	run(t, f)
	ctx := context.Background()
	for start := time.Now(); time.Since(start) < 12*time.Second; time.Sleep(5 * time.Millisecond) {
		_, c1, e1 := l.Fence(ctx)
		_, c2, e2 := f.Fence(ctx)
		c1()
		c2()
		if e1 == nil && e2 == nil {
			t.Fatalf("both replicas may write, %s after the slow read began", time.Since(start).Round(time.Millisecond))
		}
	}
	waitLeading(t, f, true, "the follower to take over the lease its leader stopped renewing")
}

// TestLostRenewalEndsLeadership: a leader that cannot renew ends lead's context, and its
// fence closes, within the renew deadline.
func TestLostRenewalEndsLeadership(t *testing.T) {
	v := &replicaView{s: &leaseStore{}}
	e := electorOn(t, v, "leader", 3*time.Second)
	leading, ended, _ := run(t, e)
	within(t, leading, "leadership")
	v.cut.Store(true)
	within(t, ended, "lead's context to end")
	if _, _, err := e.Fence(context.Background()); !errors.Is(err, leader.ErrNotLeader) {
		t.Errorf("fence after the lost renewal = %v, want ErrNotLeader", err)
	}
	waitLeading(t, e, false, "leadership to end")
}

// TestReleaseWaitsForOpenFences: a write fenced outside lead (the notifier's) is still
// on the wire when the daemon stops: the lease is released only once it has ended, so
// no other replica begins before.
func TestReleaseWaitsForOpenFences(t *testing.T) {
	s := &leaseStore{}
	v := &replicaView{s: s}
	// A 15 s lease: the fence stays open 10 s past the last renewal, however slowly a
	// busy machine runs this test.
	e := electorOn(t, v, "leader", 15*time.Second)
	leading, _, stop := run(t, e)
	within(t, leading, "leadership")
	_, done, err := e.Fence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	waitLeading(t, e, false, "leadership to end")
	// Run has stopped leading; a release not waiting for the write would come now.
	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	holder := *s.lease.Spec.HolderIdentity
	s.mu.Unlock()
	if holder != "leader" {
		t.Fatalf("the lease was released (holder %q) while a fenced write was open", holder)
	}
	done()
	within(t, stopped, "the release")
	s.mu.Lock()
	holder = *s.lease.Spec.HolderIdentity
	s.mu.Unlock()
	if holder != "" {
		t.Errorf("after the write ended the lease holder = %q, want it released", holder)
	}
}

func TestNewRefusesTimingsALeaseCannotHold(t *testing.T) {
	v := &replicaView{s: &leaseStore{}}
	for _, tc := range []struct {
		lease, renew, retry time.Duration
		want                string
	}{
		{500 * time.Millisecond, 0, 0, "at least one second"},
		{1500 * time.Millisecond, 1400 * time.Millisecond, 100 * time.Millisecond, "shorter than the lease (1s"},
		{15 * time.Second, 10 * time.Second, 9 * time.Second, "1.2 retry periods"},
		{15 * time.Second, 0, 0, ""},
	} {
		_, err := leader.New(leader.Config{Leases: v, Namespace: "default", Name: "x", Identity: "a",
			LeaseDuration: tc.lease, RenewDeadline: tc.renew, RetryPeriod: tc.retry})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("lease %s, renew %s, retry %s: %v, want %q", tc.lease, tc.renew, tc.retry, err, tc.want)
		}
	}
}
