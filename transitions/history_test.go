package transitions

import (
	"strings"
	"testing"
	"time"
)

func TestHistory(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "      approvers: [alice, bob]", "      approvers: [alice, bob]\n      overriders: [head-of-risk]", 1), history)
}

// history builds a model's life as auditors ask about it: two promotions, a rollback, a
// person's move by hand, an override; the timeline names each holder, how it got there
// and by whom, and At answers "which version held champion then".
func history(f *fixture) {
	t := f.t
	step := func() time.Time { f.clock.Advance(time.Hour); return f.clock.Now() }

	v1 := f.create(good(f.model))
	f.pass() // v1 promoted by modelgate
	t1 := step()
	v2 := f.create(good(f.model))
	f.pass() // v2 promoted by modelgate
	t2 := step()
	f.tag(v2.Version, TagRollback, "latency regression")
	f.pass() // back to v1
	t3 := step()
	v3 := f.create(good(f.model))
	f.pass() // v3 promoted
	step()
	if err := f.client.SetAlias(f.ctx, f.model, "champion", v1.Version); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Minute) // a full scan sees the hand move
	f.pass()
	f.pass()
	t4 := step()
	v4 := f.create(unfair(f.model)) // rejected by the checks
	f.pass()
	f.tag(v4.Version, "modelgate.override.head-of-risk", "regulator deadline")
	f.pass()

	events, err := f.evaluateAudit().Events(f.ctx, f.model, "")
	if err != nil {
		t.Fatal(err)
	}
	timeline := History(events)["alias:champion"]
	var got []string
	for _, ten := range timeline {
		got = append(got, ten.Version+" "+ten.How+" by "+ten.By)
	}
	want := []string{
		v1.Version + " promoted by modelgate",
		v2.Version + " promoted by modelgate",
		v1.Version + " rollback by " + ActorRollback,
		v3.Version + " promoted by modelgate",
		v1.Version + " hand by hand",
		v4.Version + " override by head-of-risk",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if timeline[2].Reason == "" || !strings.Contains(timeline[2].Reason, "latency regression") || timeline[5].Reason == "" {
		t.Errorf("reasons: %q, %q", timeline[2].Reason, timeline[5].Reason)
	}
	if timeline[0].EvidenceDigest == "" || !timeline[5].Until.IsZero() {
		t.Errorf("tenures %+v", timeline)
	}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{timeline[0].From.Add(-time.Second), ""},
		{t1.Add(-time.Minute), v1.Version},
		{t2.Add(-time.Minute), v2.Version},
		{t3.Add(-time.Minute), v1.Version},
		{t4.Add(-time.Minute), v1.Version},
		{f.clock.Now().Add(time.Minute), v4.Version},
	} {
		ten, ok := At(timeline, tc.at)
		if (tc.want == "" && ok) || (tc.want != "" && ten.Version != tc.want) {
			t.Errorf("at %s: version %q (%v), want %q", tc.at.Format(time.RFC3339), ten.Version, ok, tc.want)
		}
	}
}
