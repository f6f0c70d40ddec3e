package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// The reviewer's screen is MLflow's own UI: these tests open it in Debian's Chromium at a
// laptop's 1440×900 and check what a reviewer sees without scrolling.
const viewW, viewH = 1440, 900

// chromiumPath finds Debian's chromium; without it the browser test skips, unless CI is
// set (scripts/install-tools.sh installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: scripts/install-tools.sh installs Debian's chromium package")
	}
	t.Skip("chromium not found (Debian: apt-get install chromium)")
	return ""
}

// browser is one Chromium tab on an MLflow UI.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // MLflow's URL
	shots string // where screenshots go ("" for none)
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.WindowSize(viewW, viewH),
		chromedp.NoSandbox, // the tests may run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("hide-scrollbars", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(viewW, viewH)); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base, shots: os.Getenv("MODELGATE_SCREENSHOTS")}
}

// open loads a page of MLflow's UI (a path after "#") and waits until ready, a CSS
// selector, is on it; it closes the assistant panel MLflow 3 opens beside every page,
// which takes a third of the width (a reviewer closes it once).
func (b *browser) open(path, ready string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.base+"/#"+path)); err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	b.settle(ctx, path, ready)
}

// reload reloads the page, as a reviewer does after voting (MLflow does not refresh).
func (b *browser) reload(ready string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		b.t.Fatalf("reload: %v", err)
	}
	b.settle(ctx, "(reloaded)", ready)
}

func (b *browser) settle(ctx context.Context, path, ready string) {
	b.t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(() => {
		const close = document.querySelector('[data-component-id="mlflow.assistant.chat_panel.close"]');
		if (close) close.click();
		return document.querySelector(%q) !== null && !close;
	})()`, ready), chromedp.WithPollingInterval(250*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("%s: %s never appeared: %v", path, ready, err)
	}
	// The layout settles once the panel has gone and the fonts are in.
	if err := chromedp.Do(ctx, chromedp.Sleep(500*time.Millisecond)); err != nil {
		b.t.Fatal(err)
	}
}

// sight is text a reviewer must see on the screen: inside an element that sel matches,
// within the viewport, and not cut off by the element's box (an ellipsis, a scroll bar).
type sight struct {
	What string `json:"what"`
	Sel  string `json:"sel"`
	Text string `json:"text"`
}

// mustSee fails the test for each sight that is not on the screen as the page opened.
func (b *browser) mustSee(page string, sights ...sight) {
	b.t.Helper()
	arg, err := json.Marshal(sights)
	if err != nil {
		b.t.Fatal(err)
	}
	missing, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](fmt.Sprintf(`((sights) => {
		const onScreen = (s) => {
			for (const el of document.querySelectorAll(s.sel)) {
				const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
				for (let n = walk.nextNode(); n; n = walk.nextNode()) {
					const i = n.data.indexOf(s.text);
					if (i < 0) continue;
					const range = document.createRange();
					range.setStart(n, i);
					range.setEnd(n, i + s.text.length);
					const r = range.getBoundingClientRect(), box = n.parentElement.getBoundingClientRect();
					if (r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth &&
						r.right <= box.right + 1 && r.bottom <= box.bottom + 1) return true;
				}
			}
			return false;
		};
		return sights.filter((s) => !onScreen(s)).map((s) => s.what + " (" + JSON.stringify(s.text) + " in " + s.sel + ")");
	})(%s)`, arg)))
	if err != nil {
		b.t.Fatalf("%s: %v", page, err)
	}
	if len(missing) > 0 {
		b.screenshot("failed-" + strings.ReplaceAll(page, " ", "-"))
		b.t.Errorf("%s: not visible at %d×%d without scrolling: %s", page, viewW, viewH, strings.Join(missing, "; "))
	}
}

// screenshot writes the screen to MODELGATE_SCREENSHOTS/name.png when that is set.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// The parts of a version page.
const report = `[data-testid="note-editor-preview-content"]`

// TestReviewerPagesInBrowser: the gate of examples/modelgate.yaml (all its checks, two
// approvals needed) decides four versions; each version page and the model's versions
// list show a reviewer the decision, every check, the votes and what to do next, with
// modelgate.status, without scrolling; a vote typed into the UI's tag editor promotes the
// version, which the page shows after a reload. With MODELGATE_SCREENSHOTS set (make
// screenshots), it writes each page as a PNG there.
func TestReviewerPagesInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	chromiumPath(t)
	srv, err := mlflowtest.Start(context.Background(), mlflowtest.Options{})
	if err != nil {
		mlflowtest.Unavailable(t, err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	example, err := os.ReadFile("../../examples/modelgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	twoApprovals := strings.Replace(string(example), "min_approvals: 1\n", "min_approvals: 2\n", 1)
	if twoApprovals == string(example) {
		t.Fatal("examples/modelgate.yaml no longer sets min_approvals: 1 on its first gate")
	}
	startDaemon(t, []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MODELGATE_POLICY=" + writePolicy(t, twoApprovals),
		"MODELGATE_POLL_INTERVAL=1s", "SLACK_WEBHOOK_URL=http://127.0.0.1:1/unused", "MODELGATE_LOG_FORMAT=text"})
	c := srv.Client(t, mlflow.Options{})
	const model = "credit-scoring"
	create := func(f1 float64, change func(m map[string]float64), desc, want string) string {
		t.Helper()
		spec := goodCredit(model)
		spec.Metrics["f1_score"] = f1
		spec.Description = desc
		if change != nil {
			change(spec.Metrics)
		}
		mv, err := mlflowtest.CreateVersion(ctx, c, spec)
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, c, model, mv.Version, want)
		return mv.Version
	}
	v1 := create(0.90, nil, "Baseline gradient boosting, trained on 2026-Q2 data.", "promoted")
	v2 := create(0.93, nil, "Retrained on 2026-Q3 data.", "promoted")
	waitStatus(t, c, model, v1, "superseded")
	v3 := create(0.94, func(m map[string]float64) { m["recall_sex_female"] = 0.62 }, "Tried a smaller feature set.", "rejected")
	v4 := create(0.92, func(m map[string]float64) { m["accuracy"] = 0.87 }, "Fewer features; slightly less accurate, much cheaper to serve.", "pending_review")
	for key, value := range map[string]string{"modelgate.approve.bob": "checked the slices", "modelgate.approve.mallory": "lgtm"} {
		if err := c.SetModelVersionTag(ctx, model, v4, key, value); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Minute, "the report to show bob's approval", func() bool {
		mv, err := c.GetModelVersion(ctx, model, v4)
		return err == nil && strings.Contains(mv.Description, "**bob** approved")
	})

	b := newBrowser(t, srv.URL)
	page := func(v string) string { return "/models/" + model + "/versions/" + v }
	checkRows := func() []sight {
		var s []sight
		for _, name := range []string{"accuracy-floor", "accuracy-target", "parity", "recall-by-group", "beats-champion", "security-scan", "enough-data"} {
			s = append(s, sight{"check row " + name, report + " td", name})
		}
		return s
	}
	// modelgate.status is in the Tags table, but not on the first screen: MLflow sorts the
	// table by key and caps it at 280 px, and modelgate.record (and every
	// modelgate.approve.* vote) sorts before it, its JSON wrapped in a 190 px column
	// (docs/mlflow.md). The state line and the headline carry the status instead.
	status := func(value string) {
		t.Helper()
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
			`(document.querySelector('tr[data-row-key="modelgate.status"] td:nth-child(2)') || {}).innerText || ""`))
		if err != nil || strings.TrimSpace(got) != value {
			t.Errorf("the Tags table shows modelgate.status %q (%v), want %q", got, err, value)
		}
	}

	b.open(page(v4), report+" h3")
	b.mustSee("pending version", append([]sight{
		{"the state line", report, "⏳ review: accuracy-target"},
		{"the decision", report + " h3", "Waiting for review"},
		{"the review's progress", report, "Review: 1 of 2 approval(s)"},
		{"bob's approval", report, "approved (“checked the slices”)"},
		{"alice's approve tag", report + " code", "modelgate.approve.alice"},
		{"how to reject", report + " code", "modelgate.reject.<your name>"},
		{"carol's approve tag", report + " code", "modelgate.approve.carol"},
		{"the reload hint", report, "reload this page"},
	}, checkRows()...)...)
	status("pending_review")
	b.screenshot("pending-review")

	b.open(page(v3), report+" h3")
	b.mustSee("rejected version", append([]sight{
		{"the state line", report, "❌ rejected: recall-by-group"},
		{"the decision", report + " h3", "Rejected"},
		{"why", report + " td", "gap 0.23 > 0.1"},
		{"how to re-evaluate", report + " code", "modelgate.reevaluate"},
	}, checkRows()...)...)
	status("rejected")
	b.screenshot("rejected")

	b.open(page(v2), report+" h3")
	b.mustSee("promoted version", append([]sight{
		{"the state line", report, "✅ promoted: champion"},
		{"the decision", report + " h3", "Promoted: champion"},
		{"how to roll back", report + " code", "modelgate.rollback"},
	}, checkRows()...)...)
	status("promoted")
	b.screenshot("promoted")

	b.open(page(v1), report+" h3")
	b.mustSee("superseded version", []sight{
		{"the state line", report, "⏹ superseded"},
		{"the decision", report + " h3", "Superseded"},
		{"by what", report, "now held by version " + v2},
	}...)
	status("superseded")
	b.screenshot("superseded")

	b.open("/models/"+model, `[role="cell"]`)
	cells := `[role="cell"] span`
	b.mustSee("versions list", []sight{
		{"v4's state", cells, "⏳ review"},
		{"v3's state", cells, "❌ rejected"},
		{"v2's state", cells, "✅ promoted"},
		{"v1's state", cells, "⏹ superseded"},
	}...)
	b.screenshot("versions")

	// alice approves in the UI's tag editor, reloads, and sees the promotion.
	b.open(page(v4), report+" h3")
	b.addTag("modelgate.approve.alice", "fine for the cheaper model")
	waitStatus(t, c, model, v4, "promoted")
	b.reload(report + " h3")
	b.mustSee("promoted after the vote", []sight{
		{"the state line", report, "✅ promoted: champion"},
		{"the decision", report + " h3", "Promoted: champion"},
		{"who approved", report, "alice"},
	}...)
	status("promoted")
	b.screenshot("promoted-after-vote")

	// The auditor's view: the audit experiment's runs, one per event.
	exp, err := c.ExperimentByName(ctx, "modelgate-audit")
	if err != nil {
		t.Fatal(err)
	}
	b.open("/experiments/"+exp.ExperimentID+"/runs", `.ag-row`)
	b.mustSee("audit runs", []sight{
		{"the vote's promotion", ".ag-row", model + "/" + v4 + " promoted"},
		{"the rejection", ".ag-row", model + "/" + v3 + " decided"},
	}...)
	b.screenshot("audit-runs")
}

// waitStatus waits until modelgate has given a version the status want.
func waitStatus(t *testing.T, c *mlflow.Client, model, version, want string) {
	t.Helper()
	waitFor(t, 2*time.Minute, model+" v"+version+" to be "+want, func() bool {
		mv, err := c.GetModelVersion(context.Background(), model, version)
		return err == nil && mv.Tags["modelgate.status"] == want
	})
}

// loginAs sends the user's basic-auth credentials with every request of the tab, as the
// browser's login prompt does once a user signs in to an MLflow with authentication.
func (b *browser) loginAs(user, password string) {
	b.t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	if err := chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Basic " + auth}})
		return err
	})); err != nil {
		b.t.Fatalf("signing in as %s: %v", user, err)
	}
}

// addTag adds a tag in the version page's tag editor, as a reviewer does.
func (b *browser) addTag(key, value string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx,
		chromedp.SendKeys(chromedp.CSS(`[data-testid="tags-form-input-name"]`), key),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="tags-form-input-value"]`), value),
		chromedp.Click(chromedp.CSS(`[data-testid="add-tag-button"]`))); err != nil {
		b.t.Fatalf("adding %s in the tag editor: %v", key, err)
	}
}

// TestVerifiedVoteInBrowser: on an MLflow running the modelgate-auth app, alice, signed
// in to the UI, cannot vote as bob (the UI shows MLflow's refusal), and her own vote,
// added in the tag editor, is recorded and counted: the report marks it verified.
func TestVerifiedVoteInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	chromiumPath(t)
	srv, err := mlflowtest.Start(context.Background(), mlflowtest.Options{BasicAuth: true, AppName: "modelgate-auth",
		DefaultPermission: "EDIT", Env: []string{"MODELGATE_AUTH_SERVICE_USERS=" + mlflowtest.AdminUser}})
	if err != nil {
		mlflowtest.Unavailable(t, err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	for _, u := range []string{"alice", "bob"} {
		if err := srv.CreateUser(ctx, u, u+"-password-1"); err != nil {
			t.Fatal(err)
		}
	}
	const model = "credit-verified"
	policy := `gates:
  - name: credit
    models: ["credit-*"]
    checks:
      - {name: accuracy-target, metric: accuracy, min: 0.9, on_fail: review}
    review:
      approvers: [alice, bob]
      identity: verified
    promote: {alias: champion}
`
	startDaemon(t, []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MLFLOW_TRACKING_USERNAME=" + mlflowtest.AdminUser,
		"MLFLOW_TRACKING_PASSWORD=" + mlflowtest.AdminPassword, "MODELGATE_POLICY=" + writePolicy(t, policy),
		"MODELGATE_POLL_INTERVAL=1s", "MODELGATE_LOG_FORMAT=text"})
	c := srv.Client(t, mlflow.Options{})
	spec := goodCredit(model)
	spec.Metrics["accuracy"] = 0.87
	mv, err := mlflowtest.CreateVersion(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, model, mv.Version, "pending_review")

	b := newBrowser(t, srv.URL)
	b.loginAs("alice", "alice-password-1")
	page := "/models/" + model + "/versions/" + mv.Version
	b.open(page, report+" h3")
	b.addTag("modelgate.approve.bob", "on bob's behalf")
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](`document.body.innerText.includes("signed in to MLflow as alice")`,
		chromedp.WithPollingInterval(250*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
		b.screenshot("failed-vote-refused")
		t.Fatalf("the UI does not show MLflow's refusal of alice's vote as bob: %v", err)
	}
	if err := chromedp.Do(b.ctx, chromedp.Sleep(1500*time.Millisecond)); err != nil { // the notice fades in
		t.Fatal(err)
	}
	b.screenshot("vote-refused")
	if got, err := c.GetModelVersion(ctx, model, mv.Version); err != nil || got.Tags["modelgate.approve.bob"] != "" || hasKey(got.Tags, "modelgate.approve.bob") {
		t.Fatalf("alice's vote as bob was written: %v %v", got.Tags, err)
	}

	b.reload(report + " h3") // a fresh tag editor
	b.addTag("modelgate.approve.alice", "checked the Q3 slices")
	waitFor(t, time.Minute, "alice's vote to be written", func() bool {
		got, err := c.GetModelVersion(ctx, model, mv.Version)
		return err == nil && hasKey(got.Tags, "modelgate.approve.alice")
	})
	waitStatus(t, c, model, mv.Version, "promoted")
	b.reload(report + " h3")
	b.mustSee("promoted on a verified vote", []sight{
		{"the state line", report, "✅ promoted: champion"},
		{"who approved, verified", report, "alice (✔ verified)"},
	}...)
	b.screenshot("verified-vote")
}

func hasKey(m map[string]string, key string) bool {
	_, ok := m[key]
	return ok
}
