package rules

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a policy file, at a line and column.
type Problem struct {
	File      string
	Line, Col int
	Msg       string
}

func (p Problem) String() string { return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg) }

// Problems is every problem found in a policy file; Load returns them all at once.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// MaxPolicyBytes bounds a policy file: a few gates take a few kilobytes.
const MaxPolicyBytes = 1 << 20

// Load parses and validates a policy file. file names it in problems. Decoding is
// strict: unknown fields, wrong types and every rule of the policy are reported, all at
// once, as Problems with line and column.
func Load(file string, data []byte) (*Policy, error) {
	l := &loader{file: file}
	if len(data) > MaxPolicyBytes {
		l.problems = append(l.problems, Problem{file, 1, 1, fmt.Sprintf("the policy file is %d bytes, more than the %d a policy may have (1 MiB): split the models among fewer, broader gates (globs such as credit-*)", len(data), MaxPolicyBytes)})
		return nil, l.problems
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		l.problems = append(l.problems, syntaxProblem(file, err))
		return nil, l.problems
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		l.problems = append(l.problems, Problem{file, 1, 1, "the policy is empty: it needs a gates list"})
		return nil, l.problems
	}
	env, err := newCELEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	l.cel = env
	p := l.policy(doc.Content[0])
	if len(l.problems) > 0 {
		slices.SortStableFunc(l.problems, func(a, b Problem) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		return nil, l.problems
	}
	for _, g := range p.Gates {
		for i := range g.Checks {
			g.Checks[i].prepare()
		}
		for _, st := range g.Promote.Rollout {
			for i := range st.Checks {
				st.Checks[i].prepare()
			}
		}
	}
	p.computeDigests()
	return p, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// syntaxProblem places a YAML syntax error; the library gives a line, sometimes a column.
func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg = strings.TrimSpace(strings.TrimPrefix(strings.Replace(msg, m[0], "", 1), ":"))
	}
	return Problem{file, line, col, "YAML syntax: " + msg}
}

type loader struct {
	file     string
	problems Problems
	cel      *cel.Env
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	l.problems = append(l.problems, Problem{l.file, line, col, fmt.Sprintf(format, args...)})
}

// field handles the value of one known key.
type field func(key, value *yaml.Node)

// mapping walks a mapping, reporting non-mappings, duplicate keys and unknown keys (with
// the known ones listed), and hands each value to its field.
func (l *loader) mapping(n *yaml.Node, what string, fields map[string]field) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s must be a mapping of fields, got %s", what, describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			l.errorf(k, "%s: field %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			l.errorf(k, "%s: unknown field %q (known fields: %s)", what, k.Value, strings.Join(sortedKeys(fields), ", "))
			continue
		}
		f(k, v)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.errorf(n, "%s must be a string, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// name reads a required, non-empty string.
func (l *loader) name(n *yaml.Node, what string) string {
	s, ok := l.str(n, what)
	if ok && strings.TrimSpace(s) == "" {
		l.errorf(n, "%s must not be empty", what)
	}
	return strings.TrimSpace(s)
}

func (l *loader) number(n *yaml.Node, what string) *float64 {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		l.errorf(n, "%s must be a number, got %s", what, describe(n))
		return nil
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		l.errorf(n, "%s must be a number: %v", what, err)
		return nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		l.errorf(n, "%s must be a finite number, got %s", what, n.Value)
		return nil
	}
	return &f
}

func (l *loader) integer(n *yaml.Node, what string) (int, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		l.errorf(n, "%s must be a whole number, got %s", what, describe(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		l.errorf(n, "%s must be a whole number: %v", what, err)
		return 0, false
	}
	return v, true
}

func (l *loader) boolean(n *yaml.Node, what string) (bool, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		l.errorf(n, "%s must be true or false, got %s", what, describe(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		l.errorf(n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

// strings reads a list of strings; with scalarOK a single string is a list of one.
func (l *loader) strings(n *yaml.Node, what string, scalarOK bool) []string {
	n = deref(n)
	if scalarOK && n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{l.name(n, what)}
	}
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "%s must be a list of strings, got %s", what, describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		if s := l.name(item, what+" entry"); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 && len(n.Content) == 0 {
		l.errorf(n, "%s must not be empty", what)
	}
	return out
}

func (l *loader) action(n *yaml.Node, what string) Action {
	s, ok := l.str(n, what)
	if !ok {
		return ""
	}
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case Reject, Review:
		return a
	}
	l.errorf(n, "%s must be reject or review, got %q", what, s)
	return ""
}

// duration reads "72h", "30m" or "7d" (days are not Go durations, but how people write them).
func (l *loader) duration(n *yaml.Node, what string) time.Duration {
	s, ok := l.str(n, what)
	if !ok {
		return 0
	}
	s = strings.TrimSpace(s)
	var d time.Duration
	var err error
	if days, found := strings.CutSuffix(s, "d"); found {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		l.errorf(n, "%s must be a positive duration such as 72h, 90m or 7d, got %q", what, s)
		return 0
	}
	return d
}

func (l *loader) policy(root *yaml.Node) *Policy {
	p := &Policy{}
	var gatesNode *yaml.Node
	l.mapping(root, "policy", map[string]field{
		"gates": func(_, v *yaml.Node) {
			gatesNode = v
			v = deref(v)
			if v.Kind != yaml.SequenceNode {
				l.errorf(v, "gates must be a list of gates, got %s", describe(v))
				return
			}
			for _, gn := range v.Content {
				p.Gates = append(p.Gates, l.gate(gn))
			}
		},
		"notifications": func(_, v *yaml.Node) {
			v = deref(v)
			if v.Kind != yaml.SequenceNode {
				l.errorf(v, "notifications must be a list, got %s", describe(v))
				return
			}
			for _, nn := range v.Content {
				p.Notifications = append(p.Notifications, l.notification(nn))
			}
		},
	})
	if len(p.Gates) == 0 && len(l.problems) == 0 {
		at := root
		if gatesNode != nil {
			at = gatesNode
		}
		l.errorf(at, "the policy has no gates: add at least one under gates")
	}
	l.crossGate(p, gatesNode)
	return p
}

// crossGate checks what involves several gates: unique names, and gates that can never
// match because earlier gates take all their models first. It is linear in the number of
// gates and globs (a policy of 200,000 gates took 437 s when each gate was compared with
// every earlier one).
func (l *loader) crossGate(p *Policy, gatesNode *yaml.Node) {
	gatesNode = deref(gatesNode)
	if gatesNode == nil || gatesNode.Kind != yaml.SequenceNode || len(gatesNode.Content) != len(p.Gates) {
		return
	}
	names := map[string]int{}
	firstWith := map[string]int{} // glob -> the first gate that lists it
	star := -1                    // the first gate that matches every model
	for i, g := range p.Gates {
		at := gatesNode.Content[i]
		if j, dup := names[g.Name]; dup && g.Name != "" {
			l.errorf(at, "gate name %q is used twice (first by gate %d): names must be unique", g.Name, j+1)
		} else {
			names[g.Name] = i
		}
		if len(g.Models) > 0 {
			by := star
			if by < 0 {
				by = firstWith[g.Models[0]] - 1
				for _, glob := range g.Models {
					if firstWith[glob] == 0 {
						by = -1
						break
					}
				}
			}
			if by >= 0 {
				l.errorf(at, "gate %q can never match: gate %q comes first and matches every model it matches (first matching gate wins; put the more specific gate first)", g.Name, p.Gates[by].Name)
			}
		}
		for _, glob := range g.Models {
			if firstWith[glob] == 0 {
				firstWith[glob] = i + 1
			}
			if glob == "*" && star < 0 {
				star = i
			}
		}
	}
}

func (l *loader) gate(n *yaml.Node) *Gate {
	g := &Gate{OnMissing: Review, Review: ReviewPolicy{Required: ReviewOnFailure, MinApprovals: 1, Identity: IdentityAsserted}}
	var reviewNode, approversNode, minApprovalsNode, nameNode, modelsNode, forbidNode *yaml.Node
	what := "gate"
	if name := peekName(n); name != "" {
		what = "gate " + strconv.Quote(name)
	}
	l.mapping(n, what, map[string]field{
		"name": func(_, v *yaml.Node) { nameNode = v; g.Name = l.name(v, "gate name") },
		"models": func(_, v *yaml.Node) {
			modelsNode = v
			g.Models = l.strings(v, "models", false)
			for i, glob := range g.Models {
				if _, err := path.Match(glob, ""); err != nil {
					l.errorf(deref(v).Content[i], "models glob %q is malformed (%v): use *, ? and [...] as in shell globs", glob, err)
				}
			}
		},
		"on_missing": func(_, v *yaml.Node) {
			if a := l.action(v, "on_missing"); a != "" {
				g.OnMissing = a
			}
		},
		"checks": func(_, v *yaml.Node) {
			g.Checks = l.checks(v, "checks must be a list of checks", "gate")
		},
		"review": func(_, v *yaml.Node) {
			reviewNode = v
			l.mapping(v, "review", map[string]field{
				"required": func(_, v *yaml.Node) {
					s, ok := l.str(v, "review.required")
					switch r := ReviewRequirement(strings.TrimSpace(s)); {
					case !ok:
					case r == ReviewOnFailure || r == ReviewAlways || r == ReviewNever:
						g.Review.Required = r
					default:
						l.errorf(v, "review.required must be on_failure, always or never, got %q", s)
					}
				},
				"approvers": func(_, v *yaml.Node) {
					approversNode = v
					g.Review.Approvers = l.approvers(v)
				},
				"min_approvals": func(_, v *yaml.Node) {
					minApprovalsNode = v
					if n, ok := l.integer(v, "review.min_approvals"); ok {
						g.Review.MinApprovals = n
					}
				},
				"expires_after": func(_, v *yaml.Node) { g.Review.ExpiresAfter = l.duration(v, "review.expires_after") },
				"overriders": func(_, v *yaml.Node) {
					g.Review.Overriders = l.people(v, "review.overriders", "overrider")
				},
				"recertify_after": func(_, v *yaml.Node) { g.Review.RecertifyAfter = l.duration(v, "review.recertify_after") },
				"identity": func(_, v *yaml.Node) {
					s, ok := l.str(v, "review.identity")
					switch id := Identity(strings.TrimSpace(s)); {
					case !ok:
					case id == IdentityAsserted || id == IdentityVerified:
						g.Review.Identity = id
					default:
						l.errorf(v, "review.identity must be asserted or verified, got %q", s)
					}
				},
				"forbid_self_approval": func(_, v *yaml.Node) {
					forbidNode = v
					g.Review.ForbidSelfApproval, _ = l.boolean(v, "review.forbid_self_approval")
				},
			})
		},
		"promote": func(k, v *yaml.Node) { g.Promote = l.promotion(k, v) },
	})
	if deref(n).Kind != yaml.MappingNode {
		return g
	}
	if nameNode == nil {
		l.errorf(n, "gate needs a name")
	}
	if modelsNode == nil {
		l.errorf(n, "%s needs models: a list of globs on registered model names, e.g. [\"credit-*\"]", what)
	}
	switch {
	case g.Review.MinApprovals < 1:
		l.errorf(orNode(minApprovalsNode, n), "review.min_approvals must be at least 1, got %d", g.Review.MinApprovals)
	case len(g.Review.Approvers) > 0 && g.Review.MinApprovals > len(g.Review.Approvers):
		l.errorf(orNode(minApprovalsNode, n), "review.min_approvals is %d but only %d approvers are listed: no version could ever be approved", g.Review.MinApprovals, len(g.Review.Approvers))
	}
	if g.Review.ForbidSelfApproval && g.Review.Identity != IdentityVerified {
		l.errorf(orNode(forbidNode, n), "review.forbid_self_approval needs review.identity: verified: only the modelgate-auth MLflow app records who created a version (see the README's \"Verified votes\")")
	}
	if g.CanRequestReview() && len(g.Review.Approvers) == 0 {
		l.errorf(orNode(approversNode, orNode(reviewNode, n)), "gate %q can send versions to review (%s) but lists no approvers: add review.approvers, or make it unable to (on_fail: reject, on_missing: reject, review.required: never)", g.Name, reviewReason(g))
	}
	return g
}

func reviewReason(g *Gate) string {
	switch {
	case g.Review.Required == ReviewAlways:
		return "review.required: always"
	case slices.ContainsFunc(g.Checks, func(c Check) bool { return c.OnFail == Review }):
		return "a check has on_fail: review"
	}
	return "on_missing is review, the default"
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

// peekName returns the name field of a mapping, if it has a string one, so that problems
// found before the name is read can still say which gate or check they are in.
func peekName(n *yaml.Node) string {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" && deref(n.Content[i+1]).Kind == yaml.ScalarNode {
			return strings.TrimSpace(deref(n.Content[i+1]).Value)
		}
	}
	return ""
}

// approverName is what MLflow allows in a tag key: the name becomes part of
// modelgate.approve.<name>.
var approverName = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)

func (l *loader) approvers(v *yaml.Node) []string { return l.people(v, "review.approvers", "approver") }

// people reads a list of names that become part of vote tag keys.
func (l *loader) people(v *yaml.Node, what, role string) []string {
	names := l.strings(v, what, false)
	seen := map[string]bool{}
	out := names[:0]
	for i, name := range names {
		at := deref(v).Content[i]
		switch key := strings.ToLower(name); {
		case !approverName.MatchString(name):
			l.errorf(at, "%s %q cannot be part of an MLflow tag key (modelgate.%s.<name>): use letters, digits, _ . - and / only", role, name, map[string]string{"approver": "approve", "overrider": "override"}[role])
		case seen[key]:
			l.errorf(at, "%s %q is listed twice", role, name)
		default:
			seen[key] = true
			out = append(out, name)
		}
	}
	return out
}

// MLflow's alias rules (mlflow/utils/validation.py): word characters and dashes, at most
// 255 characters; "latest" and v<digits> are reserved.
var (
	aliasName     = regexp.MustCompile(`^[\w\-]+$`)
	reservedAlias = regexp.MustCompile(`^(?i:latest|v\d+)$`)
)

func (l *loader) alias(n *yaml.Node, what string) string {
	a := l.name(n, what)
	switch {
	case a == "":
	case !aliasName.MatchString(a) || len(a) > 255:
		l.errorf(n, "%s %q is not a valid MLflow alias: use letters, digits, _ and - (at most 255)", what, a)
	case reservedAlias.MatchString(a):
		l.errorf(n, "%s %q is reserved by MLflow (latest and v<number> cannot be set as aliases)", what, a)
	default:
		return a
	}
	return ""
}

// stage returns MLflow's canonical spelling of an active stage.
func (l *loader) stage(n *yaml.Node, what, s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "production":
		return "Production"
	case "staging":
		return "Staging"
	}
	l.errorf(n, "%s must be Staging or Production, got %q", what, s)
	return ""
}

func (l *loader) promotion(key, n *yaml.Node) Promotion {
	var p Promotion
	var archiveNode, rolloutNode *yaml.Node
	l.mapping(n, "promote", map[string]field{
		"alias": func(_, v *yaml.Node) { p.Alias = l.alias(v, "promote.alias") },
		"stage": func(_, v *yaml.Node) {
			if s, ok := l.str(v, "promote.stage"); ok {
				p.Stage = l.stage(v, "promote.stage", s)
			}
		},
		"archive_existing": func(_, v *yaml.Node) {
			archiveNode = v
			p.ArchiveExisting, _ = l.boolean(v, "promote.archive_existing")
		},
		"protect": func(_, v *yaml.Node) { p.Protect, _ = l.boolean(v, "promote.protect") },
		"rollout": func(_, v *yaml.Node) {
			rolloutNode = deref(v)
			if rolloutNode.Kind != yaml.SequenceNode {
				l.errorf(rolloutNode, "promote.rollout must be a list of stages, each {alias, soak, checks}, got %s", describe(rolloutNode))
				return
			}
			for _, sn := range rolloutNode.Content {
				p.Rollout = append(p.Rollout, l.rolloutStage(sn))
			}
		},
	})
	switch {
	case p.Alias != "" && p.Stage != "":
		l.errorf(key, "promote takes an alias or a stage, not both")
	case archiveNode != nil && p.Alias != "":
		l.errorf(archiveNode, "promote.archive_existing applies to stages only: an alias moves by itself")
	case rolloutNode != nil && p.Target() == "":
		l.errorf(rolloutNode, "promote.rollout leads to a target: set promote.alias or promote.stage too")
	}
	seen := map[string]bool{p.Alias: p.Alias != ""}
	for i, st := range p.Rollout {
		if st.Alias != "" && seen[st.Alias] {
			l.errorf(rolloutNode.Content[i], "rollout stage alias %q is used twice (or is the final alias): each stage needs an alias of its own", st.Alias)
		}
		seen[st.Alias] = true
	}
	return p
}

// checks reads a list of checks whose names are unique within where (a gate, a stage);
// notList starts the error for anything but a list.
func (l *loader) checks(v *yaml.Node, notList, where string) []Check {
	n := deref(v)
	if n.Kind != yaml.SequenceNode {
		l.errorf(n, "%s, got %s", notList, describe(n))
		return nil
	}
	var out []Check
	names := map[string]bool{}
	for _, cn := range n.Content {
		c := l.check(cn)
		if c.Name != "" && names[c.Name] {
			l.errorf(cn, "check name %q is used twice in this %s: names must be unique", c.Name, where)
		}
		names[c.Name] = true
		out = append(out, c)
	}
	return out
}

// rolloutStage reads one stage of promote.rollout.
func (l *loader) rolloutStage(n *yaml.Node) RolloutStage {
	var st RolloutStage
	soakGiven := false
	l.mapping(n, "rollout stage", map[string]field{
		"alias": func(_, v *yaml.Node) { st.Alias = l.alias(v, "rollout stage alias") },
		"soak": func(_, v *yaml.Node) {
			soakGiven = true
			st.Soak = l.duration(v, "rollout stage soak")
		},
		"checks": func(_, v *yaml.Node) {
			st.Checks = l.checks(v, "rollout stage checks must be a list of checks (may be empty: [])", "stage")
		},
	})
	if deref(n).Kind == yaml.MappingNode {
		if st.Alias == "" {
			l.errorf(n, "rollout stage needs alias: the alias the version holds during the stage, e.g. challenger")
		}
		if !soakGiven {
			l.errorf(n, "rollout stage %q needs soak: how long the version holds it before its checks, e.g. 24h", st.Alias)
		}
	}
	return st
}

func (l *loader) notification(n *yaml.Node) Notification {
	nt := Notification{Format: "json", Events: slices.Clone(allEvents)}
	urlEnvGiven := false
	l.mapping(n, "notification", map[string]field{
		"url_env": func(_, v *yaml.Node) {
			urlEnvGiven = true
			s := l.name(v, "url_env")
			if s != "" && !envVarName.MatchString(s) {
				l.errorf(v, "url_env names the environment variable holding the URL, e.g. SLACK_WEBHOOK_URL; %q is not a variable name", s)
			}
			nt.URLEnv = s
		},
		"format": func(_, v *yaml.Node) {
			s, ok := l.str(v, "format")
			if f := strings.ToLower(strings.TrimSpace(s)); ok && (f == "slack" || f == "json") {
				nt.Format = f
			} else if ok {
				l.errorf(v, "format must be slack or json, got %q", s)
			}
		},
		"events": func(_, v *yaml.Node) {
			nt.Events = nil
			for i, s := range l.strings(v, "events", false) {
				if e := Event(s); slices.Contains(allEvents, e) {
					nt.Events = append(nt.Events, e)
				} else {
					l.errorf(deref(v).Content[i], "unknown event %q: events are %s", s, joinEvents(allEvents))
				}
			}
		},
	})
	if !urlEnvGiven && deref(n).Kind == yaml.MappingNode {
		l.errorf(n, "notification needs url_env: the environment variable that holds the webhook URL (the URL itself never goes in the policy file)")
	}
	return nt
}

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func joinEvents(es []Event) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}

// checkFields lists, per field, the kinds of check it belongs to.
var checkFields = map[string][]Kind{
	"metric":              {KindThreshold, KindBaseline},
	"min":                 {KindThreshold},
	"max":                 {KindThreshold},
	"group_metric":        {KindGroup},
	"max_gap":             {KindGroup},
	"min_ratio":           {KindGroup},
	"min_groups":          {KindGroup},
	"baseline":            {KindBaseline},
	"greater_is_better":   {KindBaseline},
	"threshold":           {KindBaseline},
	"min_absolute_change": {KindBaseline},
	"min_relative_change": {KindBaseline},
	"tag":                 {KindTag},
	"equals":              {KindTag},
	"expr":                {KindExpr},
	"lineage":             {KindLineage},
}

// kindOf decides a check's kind from the fields that name it.
func kindOf(keys map[string]*yaml.Node) (Kind, []string) {
	var kinds []Kind
	var why []string
	add := func(k Kind, field string) { kinds = append(kinds, k); why = append(why, field) }
	switch {
	case keys["baseline"] != nil:
		add(KindBaseline, "baseline")
	case keys["metric"] != nil:
		add(KindThreshold, "metric")
	}
	if keys["group_metric"] != nil {
		add(KindGroup, "group_metric")
	}
	if keys["tag"] != nil {
		add(KindTag, "tag")
	}
	if keys["expr"] != nil {
		add(KindExpr, "expr")
	}
	if keys["lineage"] != nil {
		add(KindLineage, "lineage")
	}
	if len(kinds) != 1 {
		return "", why
	}
	return kinds[0], why
}

func (l *loader) check(n *yaml.Node) Check {
	c := Check{OnFail: Reject, MinGroups: 2}
	keys := map[string]*yaml.Node{}
	fields := map[string]field{
		"name":       func(_, v *yaml.Node) { c.Name = l.name(v, "check name") },
		"on_fail":    func(_, v *yaml.Node) { c.OnFail = l.action(v, "on_fail") },
		"on_missing": func(_, v *yaml.Node) { c.OnMissing = l.action(v, "on_missing") },
	}
	for f := range checkFields {
		fields[f] = func(k, v *yaml.Node) { keys[f] = v; keys["@"+f] = k }
	}
	label := "check"
	if name := peekName(n); name != "" {
		label = "check " + strconv.Quote(name)
	}
	l.mapping(n, label, fields)
	if deref(n).Kind != yaml.MappingNode {
		return c
	}
	at := func(f string) *yaml.Node { return keys[f] }
	if c.Name == "" && peekName(n) == "" {
		l.errorf(n, "check needs a name")
	}
	kind, why := kindOf(keys)
	if kind == "" {
		if len(why) == 0 {
			l.errorf(n, "%s needs one of metric, group_metric, tag, expr or lineage", label)
		} else {
			l.errorf(n, "%s mixes %s: a check has exactly one of metric, group_metric, tag, expr or lineage", label, strings.Join(why, ", "))
		}
		return c
	}
	c.Kind = kind
	for f, kinds := range checkFields {
		if keys[f] != nil && !slices.Contains(kinds, kind) {
			l.errorf(keys["@"+f], "%s: %s does not apply to a %s check", label, f, kind)
		}
	}
	switch kind {
	case KindThreshold:
		c.Metrics = l.strings(at("metric"), label+": metric", true)
		if v := at("min"); v != nil {
			c.Min = l.number(v, label+": min")
		}
		if v := at("max"); v != nil {
			c.Max = l.number(v, label+": max")
		}
		switch {
		case at("min") == nil && at("max") == nil:
			l.errorf(n, "%s has no bound: give min, max or both", label)
		case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
			l.errorf(at("min"), "%s: min %s is greater than max %s: no value could pass", label, fmtNum(*c.Min), fmtNum(*c.Max))
		}
	case KindGroup:
		l.groupCheck(&c, label, n, keys)
	case KindBaseline:
		l.baselineCheck(&c, label, n, keys)
	case KindTag:
		c.Tag = l.name(at("tag"), label+": tag")
		if v := at("equals"); v != nil {
			c.Equals, _ = l.str(v, label+": equals")
		} else {
			l.errorf(n, "%s has no bound: give equals, the value the tag must have", label)
		}
	case KindLineage:
		l.mapping(at("lineage"), label+": lineage", map[string]field{
			"git_commit": func(_, v *yaml.Node) { c.GitCommit, _ = l.boolean(v, label+": lineage.git_commit") },
			"datasets": func(_, v *yaml.Node) {
				if n, ok := l.integer(v, label+": lineage.datasets"); ok {
					if n < 0 {
						l.errorf(v, "%s: lineage.datasets must be 0 or more", label)
					}
					c.Datasets = n
				}
			},
		})
		if !c.GitCommit && c.Datasets == 0 && deref(at("lineage")).Kind == yaml.MappingNode {
			l.errorf(at("lineage"), "%s: lineage asks for nothing: set git_commit: true, datasets: N (at least N dataset inputs), or both", label)
		}
	case KindExpr:
		if s, ok := l.str(at("expr"), label+": expr"); ok {
			prg, err := compileCEL(l.cel, s)
			if err != nil {
				l.errorf(at("expr"), "%s: expr does not compile: %v", label, err)
			}
			c.Expr, c.program = s, prg
		}
	}
	return c
}

func (l *loader) groupCheck(c *Check, label string, n *yaml.Node, keys map[string]*yaml.Node) {
	if s, ok := l.str(keys["group_metric"], label+": group_metric"); ok {
		re, err := regexp.Compile("^(?:" + s + ")$")
		switch {
		case err != nil:
			l.errorf(keys["group_metric"], "%s: group_metric is not a valid regular expression: %v", label, err)
		case re.NumSubexp() == 0:
			l.errorf(keys["group_metric"], "%s: group_metric %q has no capture group: wrap the part that names the group in parentheses, e.g. recall_sex_(.+)", label, s)
		default:
			c.GroupPattern, c.GroupMetric = re, s
		}
	}
	if v := keys["max_gap"]; v != nil {
		if c.MaxGap = l.number(v, label+": max_gap"); c.MaxGap != nil && *c.MaxGap < 0 {
			l.errorf(v, "%s: max_gap must not be negative", label)
		}
	}
	if v := keys["min_ratio"]; v != nil {
		if c.MinRatio = l.number(v, label+": min_ratio"); c.MinRatio != nil && (*c.MinRatio < 0 || *c.MinRatio > 1) {
			l.errorf(v, "%s: min_ratio must be between 0 and 1 (0.8 is the four-fifths rule), got %s", label, fmtNum(*c.MinRatio))
		}
	}
	if v := keys["min_groups"]; v != nil {
		if m, ok := l.integer(v, label+": min_groups"); ok {
			if m < 2 {
				l.errorf(v, "%s: min_groups must be at least 2: a gap or ratio needs two groups", label)
			}
			c.MinGroups = m
		}
	}
	if keys["max_gap"] == nil && keys["min_ratio"] == nil {
		l.errorf(n, "%s has no bound: give max_gap, min_ratio or both", label)
	}
}

func (l *loader) baselineCheck(c *Check, label string, n *yaml.Node, keys map[string]*yaml.Node) {
	if keys["metric"] == nil {
		l.errorf(n, "%s: a baseline check needs metric", label)
	} else {
		c.Metrics = l.strings(keys["metric"], label+": metric", true)
	}
	if s, ok := l.str(keys["baseline"], label+": baseline"); ok {
		if st, isStage := strings.CutPrefix(strings.TrimSpace(s), "stage:"); isStage {
			c.Baseline.Stage = l.stage(keys["baseline"], label+": baseline stage", st)
		} else if strings.EqualFold(strings.TrimSpace(s), "latest") {
			l.errorf(keys["baseline"], "%s: baseline latest would usually be the candidate itself: name an alias such as champion, or stage:Production", label)
		} else {
			c.Baseline.Alias = l.alias(keys["baseline"], label+": baseline")
		}
	}
	if v := keys["greater_is_better"]; v != nil {
		c.GreaterIsBetter, _ = l.boolean(v, label+": greater_is_better")
	} else {
		l.errorf(n, "%s: greater_is_better is required (true when a higher value is better), as in MLflow's MetricThreshold", label)
	}
	if v := keys["threshold"]; v != nil {
		c.Threshold = l.number(v, label+": threshold")
	}
	if v := keys["min_absolute_change"]; v != nil {
		if c.MinAbsoluteChange = l.number(v, label+": min_absolute_change"); c.MinAbsoluteChange != nil && *c.MinAbsoluteChange < 0 {
			l.errorf(v, "%s: min_absolute_change must not be negative", label)
		}
	}
	if v := keys["min_relative_change"]; v != nil {
		if c.MinRelativeChange = l.number(v, label+": min_relative_change"); c.MinRelativeChange != nil && (*c.MinRelativeChange < 0 || *c.MinRelativeChange > 1) {
			l.errorf(v, "%s: min_relative_change must be between 0 and 1 (0.01 is 1%%), got %s", label, fmtNum(*c.MinRelativeChange))
		}
	}
	if keys["threshold"] == nil && keys["min_absolute_change"] == nil && keys["min_relative_change"] == nil {
		l.errorf(n, "%s has no bound: give threshold, min_absolute_change or min_relative_change", label)
	}
}
