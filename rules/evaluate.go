package rules

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ReservedTagPrefix starts every tag modelgate writes or reads as part of its protocol
// (status, votes, requests). Such tags are never evidence.
const ReservedTagPrefix = "modelgate."

// Evidence is what a version is judged on.
type Evidence struct {
	Model   string
	Version string
	// Metrics holds the latest value per key: the run's, overlaid by the values logged
	// against the MLflow 3 logged model. NaN and infinite values count as missing.
	Metrics map[string]float64
	// Params are the run's, overlaid by the logged model's.
	Params map[string]string
	// VersionTags and RunTags: a tag check reads the version's tag, else the run's.
	VersionTags map[string]string
	RunTags     map[string]string
	// Baselines holds the version each baseline ref points at; a ref with no entry has
	// no version yet (no alias, nothing in the stage).
	Baselines map[BaselineRef]Baseline
	// Datasets are the run's dataset inputs (mlflow.log_input).
	Datasets []Dataset
}

// Dataset is a dataset a run logged as an input: its name, digest and context
// (training, evaluation, ...).
type Dataset struct {
	Name, Digest, Context string
}

// GitCommitTag is the run tag MLflow sets to the commit of the code a run ran.
const GitCommitTag = "mlflow.source.git.commit"

// Baseline is the version a baseline check compares with.
type Baseline struct {
	Version string
	Metrics map[string]float64
}

// tags merges run tags and version tags (the version's win), leaving out modelgate's own.
func (e *Evidence) tags() map[string]string {
	out := make(map[string]string, len(e.RunTags)+len(e.VersionTags))
	for _, src := range []map[string]string{e.RunTags, e.VersionTags} {
		for k, v := range src {
			if !strings.HasPrefix(k, ReservedTagPrefix) {
				out[k] = v
			}
		}
	}
	return out
}

// Result is the outcome of one check.
type Result string

// Results.
const (
	Pass    Result = "pass"
	Fail    Result = "fail"
	Missing Result = "missing" // the evidence the check needs is absent, NaN or infinite
)

// CheckResult is one row of the report.
type CheckResult struct {
	Name   string `json:"name"`
	Kind   Kind   `json:"kind"`
	Result Result `json:"result"`
	// Action is what a fail or missing result does (the check's on_fail, or the gate's
	// on_missing); empty on pass.
	Action   Action            `json:"action,omitempty"`
	Observed string            `json:"observed"`
	Bound    string            `json:"bound"`
	Message  string            `json:"message"`
	Values   map[string]Number `json:"values,omitempty"`
	// inputs is the evidence the check read, canonically written, for the digest.
	inputs []string
}

// Outcome is the gate's decision on a version.
type Outcome string

// Outcomes.
const (
	Approved      Outcome = "approved"
	PendingReview Outcome = "pending_review"
	Rejected      Outcome = "rejected"
	NotGated      Outcome = "not_gated"
)

// Decision is the result of evaluating a version: the outcome, why, and every check.
type Decision struct {
	Model          string        `json:"model"`
	Version        string        `json:"version"`
	Gate           string        `json:"gate,omitempty"`
	Outcome        Outcome       `json:"outcome"`
	Reason         string        `json:"reason"`
	Checks         []CheckResult `json:"checks"`
	PromoteTo      string        `json:"promote_to,omitempty"`
	PolicyDigest   string        `json:"policy_digest,omitempty"`
	EvidenceDigest string        `json:"evidence_digest,omitempty"`
}

// Evaluate decides a version with the first gate that matches its model.
func (p *Policy) Evaluate(ev *Evidence) Decision {
	g := p.GateFor(ev.Model)
	if g == nil {
		return Decision{Model: ev.Model, Version: ev.Version, Outcome: NotGated,
			Reason: fmt.Sprintf("no gate matches model %q: the version is not gated", ev.Model)}
	}
	return g.Evaluate(ev)
}

// Evaluate runs every check of the gate and decides: any failed reject check (or missing
// evidence with on_missing: reject) rejects; else any failed review check, missing
// evidence with on_missing: review, or review.required: always sends the version to
// review (review.required: never rejects it instead); else it is approved.
func (g *Gate) Evaluate(ev *Evidence) Decision {
	d := Decision{Model: ev.Model, Version: ev.Version, Gate: g.Name, PromoteTo: g.Promote.Target(), PolicyDigest: g.digest}
	var rejects, reviews []string
	for i := range g.Checks {
		c := &g.Checks[i]
		r := c.run(ev)
		switch r.Result {
		case Fail:
			r.Action = c.OnFail
		case Missing:
			r.Action = cmp.Or(c.OnMissing, g.OnMissing)
		}
		switch r.Action {
		case Reject:
			rejects = append(rejects, r.Message)
		case Review:
			reviews = append(reviews, r.Message)
		}
		d.Checks = append(d.Checks, r)
	}
	d.EvidenceDigest = evidenceDigest(d.Checks)
	switch {
	case len(rejects) > 0:
		d.Outcome, d.Reason = Rejected, strings.Join(rejects, "; ")
	case len(reviews) > 0 && g.Review.Required == ReviewNever:
		d.Outcome, d.Reason = Rejected, strings.Join(reviews, "; ")+" (review.required: never)"
	case len(reviews) > 0:
		d.Outcome, d.Reason = PendingReview, strings.Join(reviews, "; ")
	case g.Review.Required == ReviewAlways:
		d.Outcome, d.Reason = PendingReview, "every check passed; this gate asks a person to approve every version (review.required: always)"
	default:
		d.Outcome, d.Reason = Approved, "every check passed"
	}
	return d
}

// EvaluateStage runs the checks of rollout stage i (an index into Promote.Rollout) on the
// evidence as it is at the end of the stage's soak, and decides as Evaluate does: a failed
// reject check rejects, a failed review check asks the approvers, else the version moves
// on.
func (g *Gate) EvaluateStage(i int, ev *Evidence) Decision {
	st := g.Promote.Rollout[i]
	stage := *g
	stage.Checks = st.Checks
	stage.Review.Required = ReviewOnFailure
	d := stage.Evaluate(ev)
	if len(st.Checks) == 0 {
		d.Reason = fmt.Sprintf("stage %s has no checks: it passes at the end of its soak", st.Alias)
	}
	return d
}

func (c *Check) run(ev *Evidence) CheckResult {
	r := CheckResult{Name: c.Name, Kind: c.Kind, Bound: c.bound}
	switch c.Kind {
	case KindThreshold:
		c.threshold(ev, &r)
	case KindGroup:
		c.group(ev, &r)
	case KindBaseline:
		c.baseline(ev, &r)
	case KindTag:
		c.tag(ev, &r)
	case KindExpr:
		c.expr(ev, &r)
	case KindLineage:
		c.lineage(ev, &r)
	}
	if r.Result != Pass {
		// Every check is named by its policy name, failing ones included (a reviewer
		// looks for "beats-champion", not for the metric it compared).
		r.Message = c.Name + ": " + r.Message
	}
	return r
}

// prepare computes what every evaluation of the check would otherwise rebuild: the
// bound as the report shows it, and the message of a pass.
func (c *Check) prepare() {
	c.ok = c.Name + " ok"
	var bounds []string
	switch c.Kind {
	case KindThreshold:
		if c.Min != nil {
			bounds = append(bounds, "≥ "+fmtNum(*c.Min))
		}
		if c.Max != nil {
			bounds = append(bounds, "≤ "+fmtNum(*c.Max))
		}
		c.bound = strings.Join(bounds, " and ")
	case KindGroup:
		if c.MaxGap != nil {
			bounds = append(bounds, "gap ≤ "+fmtNum(*c.MaxGap))
		}
		if c.MinRatio != nil {
			bounds = append(bounds, "ratio ≥ "+fmtNum(*c.MinRatio))
		}
		bounds = append(bounds, fmt.Sprintf("%d+ groups", c.MinGroups))
		c.bound = strings.Join(bounds, ", ")
	case KindBaseline:
		op, sym := "+", "≥"
		if !c.GreaterIsBetter {
			op, sym = "-", "≤"
		}
		if c.Threshold != nil {
			bounds = append(bounds, sym+" "+fmtNum(*c.Threshold))
		}
		switch {
		case c.MinAbsoluteChange == nil:
		case *c.MinAbsoluteChange == 0:
			bounds = append(bounds, fmt.Sprintf("%s %s", sym, c.Baseline))
		default:
			bounds = append(bounds, fmt.Sprintf("%s %s %s %s", sym, c.Baseline, op, fmtNum(*c.MinAbsoluteChange)))
		}
		if c.MinRelativeChange != nil {
			bounds = append(bounds, fmt.Sprintf("%s %s %s %s%%", sym, c.Baseline, op, fmtNum(*c.MinRelativeChange*100)))
		}
		c.bound = strings.Join(bounds, " and ")
	case KindTag:
		c.bound = fmt.Sprintf("= %q", c.Equals)
	case KindExpr:
		c.bound = "true"
	case KindLineage:
		if c.GitCommit {
			bounds = append(bounds, "a git commit")
		}
		if c.Datasets > 0 {
			bounds = append(bounds, fmt.Sprintf("%d+ dataset(s)", c.Datasets))
		}
		c.bound = strings.Join(bounds, ", ")
	}
}

// metric picks the first of the check's metric names with a finite value. When none has
// one, it says what it found for each.
func (c *Check) metric(metrics map[string]float64) (string, float64, string) {
	var seen []string
	for _, name := range c.Metrics {
		v, ok := metrics[name]
		switch {
		case !ok:
			seen = append(seen, name+" absent")
		case math.IsNaN(v) || math.IsInf(v, 0):
			seen = append(seen, name+" is "+fmtNum(v))
		default:
			return name, v, ""
		}
	}
	return "", 0, strings.Join(seen, ", ")
}

func (c *Check) threshold(ev *Evidence, r *CheckResult) {
	name, v, why := c.metric(ev.Metrics)
	if name == "" {
		r.Result, r.Observed, r.Message = Missing, why, fmt.Sprintf("%s missing (%s)", c.Metrics[0], why)
		r.inputs = []string{"missing:" + strings.Join(c.Metrics, ",")}
		return
	}
	r.Observed = name + " " + short(v)
	r.Values = map[string]Number{name: Number(v)}
	r.inputs = []string{"metric:" + name + "=" + canon(v)}
	switch {
	case c.Min != nil && v < *c.Min:
		r.Observed = name + " " + shown(v, *c.Min)
		r.Result, r.Message = Fail, r.Observed+" < "+fmtNum(*c.Min)
	case c.Max != nil && v > *c.Max:
		r.Observed = name + " " + shown(v, *c.Max)
		r.Result, r.Message = Fail, r.Observed+" > "+fmtNum(*c.Max)
	default:
		r.Result, r.Message = Pass, c.ok
	}
}

func (c *Check) group(ev *Evidence, r *CheckResult) {
	groupIdx := 1
	if i := c.GroupPattern.SubexpIndex("group"); i > 0 {
		groupIdx = i
	}
	type group struct {
		name, key string
		v         float64
	}
	var groups []group
	var bad []string
	for _, key := range slices.Sorted(maps.Keys(ev.Metrics)) {
		m := c.GroupPattern.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		v := ev.Metrics[key]
		r.inputs = append(r.inputs, "metric:"+key+"="+canon(v))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			bad = append(bad, fmt.Sprintf("%s is %s", key, fmtNum(v)))
			continue
		}
		groups = append(groups, group{m[groupIdx], key, v})
	}
	r.Values = map[string]Number{}
	var parts []string
	for _, g := range groups {
		r.Values[g.name] = Number(g.v)
		parts = append(parts, g.name+" "+short(g.v))
	}
	r.Observed = strings.Join(parts, ", ")
	if len(bad) > 0 {
		r.Result, r.Message = Missing, strings.Join(bad, ", ")
		return
	}
	if len(groups) < c.MinGroups {
		r.Result = Missing
		r.Message = fmt.Sprintf("%d group(s) match %s, %d needed", len(groups), c.GroupMetric, c.MinGroups)
		if len(groups) == 0 {
			r.Observed = "no matching metric"
		}
		return
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].v < groups[j].v })
	lo, hi := groups[0], groups[len(groups)-1]
	gap := hi.v - lo.v
	r.Values["gap"] = Number(gap)
	detail := fmt.Sprintf("lowest %s %s, highest %s %s", lo.name, short(lo.v), hi.name, short(hi.v))
	var failed []string
	if c.MaxGap != nil && gap > *c.MaxGap && !nearlyEqual(gap, *c.MaxGap) {
		failed = append(failed, fmt.Sprintf("gap %s > %s", shown(gap, *c.MaxGap), fmtNum(*c.MaxGap)))
	}
	if c.MinRatio != nil {
		var ratio float64
		switch {
		case lo.v < 0:
			r.Result = Missing
			r.Message = fmt.Sprintf("ratio undefined for negative values (%s)", detail)
			return
		case hi.v == lo.v: // all equal, zeros included: parity
			ratio = 1
		default:
			ratio = lo.v / hi.v
		}
		r.Values["ratio"] = Number(ratio)
		if ratio < *c.MinRatio && !nearlyEqual(ratio, *c.MinRatio) {
			failed = append(failed, fmt.Sprintf("ratio %s < %s", shown(ratio, *c.MinRatio), fmtNum(*c.MinRatio)))
		}
	}
	if len(failed) > 0 {
		r.Result, r.Message = Fail, fmt.Sprintf("%s (%s)", strings.Join(failed, ", "), detail)
		return
	}
	r.Result, r.Message = Pass, c.ok
}

// nearlyEqual compares derived values (a gap, a ratio) with a bound, forgiving the float
// rounding of the subtraction or division: 0.55 - 0.5 is 0.050000000000000044, and a
// max_gap of 0.05 must let it pass. Raw metrics are compared exactly.
func nearlyEqual(a, b float64) bool {
	return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b))
}

// short writes a value for people: four significant digits after the point (a metric
// of 0.7733598409542743 shows as 0.7734), whole numbers in full (12000).
func short(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmtNum(v)
	}
	digits := 4
	if a := math.Abs(v); a >= 1 {
		digits = max(4, int(math.Floor(math.Log10(a)))+1)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', digits, 64), 64)
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// shown writes a value that failed a bound: short, or in full when rounding would make
// it look equal to the bound (0.89999 fails 0.9; 0.9 < 0.9 would explain nothing).
func shown(v, bound float64) string {
	if s := short(v); s != short(bound) {
		return s
	}
	return fmtNum(v)
}

// baseline applies MLflow's MetricThreshold (mlflow/models/evaluation/validation.py in
// 3.18), with one difference that PRODUCT.md sets: when no version holds the baseline
// alias or stage, the comparisons pass as "no baseline" (MLflow fails them as
// missing_baseline). A baseline version without the metric is missing evidence.
func (c *Check) baseline(ev *Evidence, r *CheckResult) {
	// How a failure reads: "f1_score 0.82 < 0.85", "worse than champion", "below
	// champion + 0.01" (for lower-is-better metrics: ">", "above champion - 0.01").
	worse, below, op := "<", "below", "+"
	if !c.GreaterIsBetter {
		worse, below, op = ">", "above", "-"
	}
	name, cand, why := c.metric(ev.Metrics)
	if name == "" {
		r.Result, r.Observed, r.Message = Missing, why, fmt.Sprintf("%s missing (%s)", c.Metrics[0], why)
		r.inputs = []string{"missing:" + strings.Join(c.Metrics, ",")}
		return
	}
	r.Values = map[string]Number{name: Number(cand)}
	r.inputs = []string{"metric:" + name + "=" + canon(cand)}
	r.Observed = name + " " + short(cand)
	var failed []string
	ge := func(a, b float64) bool {
		if c.GreaterIsBetter {
			return a >= b
		}
		return a <= b
	}
	add := func(a, b float64) float64 {
		if c.GreaterIsBetter {
			return a + b
		}
		return a - b
	}
	if c.Threshold != nil && !ge(cand, *c.Threshold) {
		failed = append(failed, fmt.Sprintf("%s %s %s %s", name, shown(cand, *c.Threshold), worse, fmtNum(*c.Threshold)))
	}
	if c.MinAbsoluteChange != nil || c.MinRelativeChange != nil {
		base, ok := ev.Baselines[c.Baseline]
		if !ok || base.Version == "" {
			r.inputs = append(r.inputs, "baseline:"+c.Baseline.String()+"=none")
			r.Observed += fmt.Sprintf("; no %s version", c.Baseline)
			if len(failed) == 0 {
				r.Result, r.Message = Pass, c.ok+" (no baseline)"
				return
			}
		} else {
			b, found := base.Metrics[name]
			r.inputs = append(r.inputs, "baseline:"+c.Baseline.String()+"@"+base.Version+":"+name+"="+canon(b))
			if !found || math.IsNaN(b) || math.IsInf(b, 0) {
				what := "absent"
				if found {
					what = fmtNum(b)
				}
				r.Result = Missing
				r.Observed += fmt.Sprintf("; %s v%s %s %s", c.Baseline, base.Version, name, what)
				r.Message = fmt.Sprintf("baseline %s v%s has no usable %s (%s)", c.Baseline, base.Version, name, what)
				return
			}
			r.Values["baseline"] = Number(b)
			r.Observed = fmt.Sprintf("%s %s vs %s v%s %s", name, short(cand), c.Baseline, base.Version, short(b))
			var vs []string
			if c.MinAbsoluteChange != nil {
				if target := add(b, *c.MinAbsoluteChange); !ge(cand, target) {
					msg := fmt.Sprintf("%s %s %s %s", below, c.Baseline, op, fmtNum(*c.MinAbsoluteChange))
					if *c.MinAbsoluteChange == 0 {
						msg = "worse than " + c.Baseline.String()
					}
					if short(cand) == short(target) { // float rounding decided it: show the sum MLflow compares with
						msg += " (= " + fmtNum(target) + ")"
					}
					vs = append(vs, msg)
				}
			}
			if c.MinRelativeChange != nil {
				if b == 0 {
					// MLflow's fallback: the candidate must merely beat a zero baseline.
					if !ge(cand, add(b, 1e-10)) {
						vs = append(vs, "does not improve on a baseline of 0")
					}
				} else {
					rel := (cand - b) / math.Abs(b)
					if !c.GreaterIsBetter {
						rel = (b - cand) / math.Abs(b)
					}
					r.Values["relative_change"] = Number(rel)
					// No tolerance here: MLflow compares the float result as it is, so
					// (0.88-0.8)/0.8 = 0.09999999999999995 misses a 0.1 minimum.
					if rel < *c.MinRelativeChange {
						vs = append(vs, fmt.Sprintf("change %s%%, needs %s%% or more", signedPct(rel, *c.MinRelativeChange), fmtNum(*c.MinRelativeChange*100)))
					}
				}
			}
			if len(vs) > 0 {
				failed = append(failed, r.Observed+": "+strings.Join(vs, ", "))
			}
		}
	}
	if len(failed) > 0 {
		r.Result, r.Message = Fail, strings.Join(failed, "; ")
		return
	}
	r.Result, r.Message = Pass, c.ok
}

func signedPct(rel, bound float64) string {
	s := shown(rel*100, bound*100)
	if rel > 0 {
		return "+" + s
	}
	return s
}

// tag checks a tag of the version and of its run. An absent tag fails the check (its
// on_fail applies: an unscanned model is not a scanned one) unless the check sets
// on_missing; the version and the run carrying the tag with different values fail it
// too, and the report shows both (a version tag set by hand must not beat what the
// training run recorded).
func (c *Check) tag(ev *Evidence, r *CheckResult) {
	vv, onVersion := ev.VersionTags[c.Tag]
	rv, onRun := ev.RunTags[c.Tag]
	if strings.HasPrefix(c.Tag, ReservedTagPrefix) {
		onVersion, onRun = false, false
	}
	switch {
	case !onVersion && !onRun:
		r.Observed, r.inputs = "absent", []string{"missing:tag:" + c.Tag}
		r.Result, r.Message = Fail, fmt.Sprintf("tag %s absent", c.Tag)
		if c.OnMissing != "" {
			r.Result, r.Message = Missing, fmt.Sprintf("tag %s missing", c.Tag)
		}
		return
	case onVersion && onRun && vv != rv:
		r.inputs = []string{"tag:" + c.Tag + "=version:" + strconv.Quote(vv) + ",run:" + strconv.Quote(rv)}
		r.Observed = fmt.Sprintf("version %q, run %q", clipText(vv, 60), clipText(rv, 60))
		r.Result = Fail
		r.Message = fmt.Sprintf("tag %s differs between the version (%q) and its run (%q)", c.Tag, clipText(vv, 60), clipText(rv, 60))
		return
	}
	v, src := vv, "version"
	if !onVersion {
		v, src = rv, "run"
	}
	r.inputs = []string{"tag:" + c.Tag + "=" + strconv.Quote(v)}
	r.Observed = fmt.Sprintf("%q (%s tag)", clipText(v, 80), src)
	if v != c.Equals {
		r.Result, r.Message = Fail, fmt.Sprintf("tag %s is %q, want %q", c.Tag, clipText(v, 80), c.Equals)
		return
	}
	r.Result, r.Message = Pass, c.ok
}

func (c *Check) expr(ev *Evidence, r *CheckResult) {
	r.Observed = clipText(c.Expr, 120)
	// The expression may read anything, so all of the evidence is its input.
	r.inputs = append(r.inputs, evidenceInputs(ev)...)
	ok, err := evalCEL(c.program, ev)
	switch {
	case err != nil:
		// An error (a key that is absent, a param that is not a number) or a cost over
		// the limit fails the check (PRODUCT.md v2), whatever the timing.
		r.Result, r.Message = Fail, clipText(err.Error(), 200)
	case !ok:
		r.Result, r.Message = Fail, "expression is false"
	default:
		r.Result, r.Message = Pass, c.ok
	}
}

// lineage checks what the version was trained from. The observed value always names
// the commit and each dataset (name and digest), so the reviewer approves a model tied to
// its code and data. Something required and absent fails the check (its on_fail
// applies), unless the check sets on_missing.
func (c *Check) lineage(ev *Evidence, r *CheckResult) {
	commit := strings.TrimSpace(ev.RunTags[GitCommitTag])
	var parts, datasets []string
	if commit != "" {
		short := commit
		if r := []rune(commit); len(r) > 12 { // a hash is shown as git shows it, by its first 12 characters
			short = string(r[:12])
		}
		parts = append(parts, "commit "+short)
	} else {
		parts = append(parts, "no git commit")
	}
	for _, d := range ev.Datasets {
		item := clipText(d.Name, 60)
		if d.Digest != "" {
			item += " (" + clipText(d.Digest, 16) + ")"
		}
		datasets = append(datasets, item)
	}
	if len(datasets) > 0 {
		parts = append(parts, "datasets "+strings.Join(datasets, ", "))
	} else {
		parts = append(parts, "no datasets")
	}
	r.Observed = strings.Join(parts, "; ")
	r.inputs = []string{"lineage:commit=" + strconv.Quote(commit)}
	for _, d := range ev.Datasets {
		r.inputs = append(r.inputs, "lineage:dataset="+strconv.Quote(d.Name)+"@"+strconv.Quote(d.Digest)+"/"+d.Context)
	}
	var lacking []string
	if c.GitCommit && commit == "" {
		lacking = append(lacking, "the run has no "+GitCommitTag+" tag")
	}
	if len(ev.Datasets) < c.Datasets {
		lacking = append(lacking, fmt.Sprintf("%d dataset input(s) logged, %d needed", len(ev.Datasets), c.Datasets))
	}
	switch {
	case len(lacking) == 0:
		r.Result, r.Message = Pass, c.ok
	case c.OnMissing != "":
		r.Result, r.Message = Missing, strings.Join(lacking, "; ")
	default:
		r.Result, r.Message = Fail, strings.Join(lacking, "; ")
	}
}

// evidenceInputs writes all metrics, params and tags canonically.
func evidenceInputs(ev *Evidence) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(ev.Metrics)) {
		out = append(out, "metric:"+k+"="+canon(ev.Metrics[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(ev.Params)) {
		out = append(out, "param:"+k+"="+strconv.Quote(ev.Params[k]))
	}
	tags := ev.tags()
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, "tag:"+k+"="+strconv.Quote(tags[k]))
	}
	return out
}

// fmtNum writes a number as briefly as it round-trips: 0.93, 12000, 1e-10, NaN, +Inf.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// canon writes a number exactly, for digests.
func canon(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
