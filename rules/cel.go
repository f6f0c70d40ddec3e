package rules

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
)

// celCostLimit bounds the work one expression may do per evaluation: room for a
// comprehension over ten thousand metrics, not for one nested in another. `check`
// refuses an expression whose estimated cost, with maps of celMaxEntries entries, can
// exceed it; at run time, exceeding it fails the check (never "missing", never a
// result that depends on the order a map is walked in).
const celCostLimit = 1_000_000

// Size hints for the cost estimate: how many entries the metrics, params and tags maps
// hold at most, and how long a key or value can be (MLflow's limits: keys 250
// characters, tag values 5,000, param values 6,000).
const (
	celMaxEntries  = 10_000
	celMaxKeyLen   = 250
	celMaxValueLen = 6_000
)

// maxExprLen bounds an expression's source.
const maxExprLen = 4096

// newCELEnv declares the variables an expression sees: metrics (string to double),
// params and tags (string to string).
func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("metrics", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.Variable("params", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("tags", cel.MapType(cel.StringType, cel.StringType)),
	)
}

// compileCEL type-checks an expression, requires it to return a bool, and prepares it
// with the cost limit.
func compileCEL(env *cel.Env, expr string) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("the expression is empty")
	}
	if len(expr) > maxExprLen {
		return nil, fmt.Errorf("the expression is %d bytes long, more than %d", len(expr), maxExprLen)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression returns %s; it must return a bool (true passes)", ast.OutputType())
	}
	est, err := env.EstimateCost(ast, sizeHints{})
	if err != nil {
		return nil, fmt.Errorf("its cost cannot be estimated: %v", err)
	}
	if est.Max > celCostLimit {
		return nil, fmt.Errorf("its cost can reach %d with %d metrics, params or tags, more than the limit of %d: avoid nesting comprehensions (exists, all, map, filter) over the maps",
			est.Max, celMaxEntries, celCostLimit)
	}
	// Exhaustive evaluation: no short-circuit, so the cost of an evaluation does not
	// depend on the order Go walks a map in.
	return env.Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptExhaustiveEval))
}

// sizeHints bounds the sizes of the variables for the cost estimate.
type sizeHints struct{}

func (sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	path := n.Path()
	switch {
	case len(path) == 1:
		return &cost.SizeEstimate{Min: 0, Max: celMaxEntries}
	case len(path) == 2 && path[1] == "@keys":
		return &cost.SizeEstimate{Min: 0, Max: celMaxKeyLen}
	case len(path) == 2:
		return &cost.SizeEstimate{Min: 0, Max: celMaxValueLen}
	}
	return nil
}

func (sizeHints) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// evalCEL runs an expression. Metrics that are NaN or infinite are left out, so an
// expression reading one errors like one reading an absent key.
func evalCEL(prg cel.Program, ev *Evidence) (bool, error) {
	metrics := make(map[string]float64, len(ev.Metrics))
	for k, v := range ev.Metrics {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			metrics[k] = v
		}
	}
	out, _, err := prg.Eval(map[string]any{
		"metrics": metrics,
		"params":  nonNil(ev.Params),
		"tags":    ev.tags(),
	})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the expression returned %v, not a bool", out.Value())
	}
	return b, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
