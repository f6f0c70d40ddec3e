package leader_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/modelgate/modelgate/transitions/leader"
	"github.com/modelgate/modelgate/transitions/leader/kubetest"
)

// replica is one Elector campaigning in its own goroutine.
type replica struct {
	e      *leader.Elector
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	leads int // times lead was called
}

func (r *replica) leadCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leads
}

func startReplica(t *testing.T, leases leader.Leases, lease, identity string) *replica {
	t.Helper()
	e, err := leader.New(leader.Config{Leases: leases, Namespace: "default", Name: lease, Identity: identity,
		Address: identity + ":8080", LeaseDuration: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{e: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = e.Run(ctx, func(ctx context.Context) {
			r.mu.Lock()
			r.leads++
			r.mu.Unlock()
			<-ctx.Done()
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestElection runs two electors on one Lease of a real API server: one leads and may
// write, the other follows, knows the leader's address and may not write; when the
// leader stops it releases the lease and the follower takes over without waiting for
// the lease to expire; and a Lease held by a replica that no longer renews it is taken
// over once it has not changed for its duration.
func TestElection(t *testing.T) {
	ctx := context.Background()
	cluster := kubetest.ForTest(t)
	leases, err := leader.NewLeaseClient(cluster.Config())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("one leads, the other follows, release hands over", func(t *testing.T) {
		a := startReplica(t, leases, "election", "a")
		b := startReplica(t, leases, "election", "b")
		var first, second *replica
		waitFor(t, "one replica to lead", func() bool {
			switch {
			case a.e.Leading() && !b.e.Leading():
				first, second = a, b
			case b.e.Leading() && !a.e.Leading():
				first, second = b, a
			}
			return first != nil
		})
		if _, cancel, err := first.e.Fence(ctx); err != nil {
			t.Errorf("the leader's fence: %v", err)
		} else {
			cancel()
		}
		if _, _, err := second.e.Fence(ctx); !errors.Is(err, leader.ErrNotLeader) {
			t.Errorf("the follower's fence = %v, want ErrNotLeader", err)
		}
		waitFor(t, "the follower to know the leader", func() bool {
			id, addr := second.e.Leader()
			return id == first.e.Identity() && addr == first.e.Identity()+":8080"
		})
		lease, err := leases.Get(ctx, "default", "election")
		if err != nil {
			t.Fatal(err)
		}
		if got := *lease.Spec.HolderIdentity; got != first.e.Identity() {
			t.Errorf("the Lease's holder = %q, want %q", got, first.e.Identity())
		}
		transitions := *lease.Spec.LeaseTransitions

		// Stopped, the leader releases the lease (holder emptied) once its lead has
		// returned, so the follower takes it on its next try instead of after expiry.
		first.cancel()
		<-first.done
		lease, err = leases.Get(ctx, "default", "election")
		if err != nil {
			t.Fatal(err)
		}
		if got := *lease.Spec.HolderIdentity; got != "" && got != second.e.Identity() {
			t.Errorf("after the leader stopped the Lease's holder = %q, want it released", got)
		}
		waitFor(t, "the follower to take over", second.e.Leading)
		lease, err = leases.Get(ctx, "default", "election")
		if err != nil {
			t.Fatal(err)
		}
		if got := *lease.Spec.HolderIdentity; got != second.e.Identity() {
			t.Errorf("after the takeover the Lease's holder = %q, want %q", got, second.e.Identity())
		}
		if got := *lease.Spec.LeaseTransitions; got != transitions+1 {
			t.Errorf("leaseTransitions = %d after a takeover, want %d", got, transitions+1)
		}
		if got := lease.Annotations[leader.AddressAnnotation]; got != second.e.Identity()+":8080" {
			t.Errorf("address annotation = %q, want the new leader's", got)
		}
		if first.leadCount() != 1 || second.leadCount() != 1 {
			t.Errorf("lead called %d and %d times, want once each", first.leadCount(), second.leadCount())
		}
	})

	t.Run("an unrenewed lease is taken over once expired", func(t *testing.T) {
		// A replica that died without releasing: the Lease names it, renewed now.
		now := metav1.NewMicroTime(time.Now())
		if _, err := leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "stale", Namespace: "default"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("gone"), LeaseDurationSeconds: ptr(int32(10)),
				AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr(int32(4))},
		}); err != nil {
			t.Fatal(err)
		}
		c := startReplica(t, leases, "stale", "c")
		waitFor(t, "c to know the dead holder", func() bool { id, _ := c.e.Leader(); return id == "gone" })
		if c.e.Leading() {
			t.Fatal("c leads while the dead holder's lease has not expired")
		}
		waitFor(t, "c to take the expired lease", c.e.Leading)
		lease, err := leases.Get(ctx, "default", "stale")
		if err != nil {
			t.Fatal(err)
		}
		if *lease.Spec.HolderIdentity != "c" || *lease.Spec.LeaseTransitions != 5 {
			t.Errorf("the Lease after the takeover: holder %q, transitions %d; want c, 5", *lease.Spec.HolderIdentity, *lease.Spec.LeaseTransitions)
		}
	})

	t.Run("a stale write is refused", func(t *testing.T) {
		lease, err := leases.Get(ctx, "default", "stale")
		if err != nil {
			t.Fatal(err)
		}
		old := lease.DeepCopy()
		lease.Spec.HolderIdentity = ptr("intruder")
		if _, err := leases.Update(ctx, lease); err != nil && !apierrors.IsConflict(err) {
			t.Fatal(err)
		}
		old.Spec.HolderIdentity = ptr("late")
		if _, err := leases.Update(ctx, old); !apierrors.IsConflict(err) {
			t.Errorf("an update from an old resourceVersion = %v, want a conflict", err)
		}
		if _, err := leases.Get(ctx, "default", "missing"); !apierrors.IsNotFound(err) {
			t.Errorf("Get of a missing Lease = %v, want not found", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }
