//! Assigning pending tasks to agents: as many tasks as capacities allow, with the largest total
//! predicted score among such assignments (min-cost max-flow).
//!
//! The flow network is source → task (capacity 1) → agent (capacity 1, cost `max − score`) →
//! sink (capacity = the agent's free slots). Every unit of flow crosses exactly one task → agent
//! edge, so shifting those costs by a constant keeps them non-negative without changing which
//! maximum flow is cheapest. Successive shortest paths with Dijkstra and Johnson potentials find
//! it in O(T · E log V).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Edge {
    to: usize,
    cap: i64,
    cost: f64,
}

struct Graph {
    edges: Vec<Edge>,
    adj: Vec<Vec<usize>>,
}

impl Graph {
    fn new(nodes: usize) -> Self {
        Self {
            edges: Vec::new(),
            adj: vec![Vec::new(); nodes],
        }
    }

    fn add(&mut self, from: usize, to: usize, cap: i64, cost: f64) -> usize {
        let id = self.edges.len();
        self.edges.push(Edge { to, cap, cost });
        self.adj[from].push(id);
        self.edges.push(Edge {
            to: from,
            cap: 0,
            cost: -cost,
        });
        self.adj[to].push(id + 1);
        id
    }
}

#[derive(PartialEq)]
struct Visit(f64, usize);
impl Eq for Visit {}
impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Visit {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// For `scores[task][agent]` (non-finite scores mean "cannot run it") and each agent's
/// `capacity`, the agent chosen for each task (`None`: left unassigned because capacity ran
/// out or no agent can run it).
pub fn assign(scores: &[Vec<f64>], capacity: &[usize]) -> Vec<Option<usize>> {
    let tasks = scores.len();
    let agents = capacity.len();
    let top = scores
        .iter()
        .flatten()
        .copied()
        .filter(|s| s.is_finite())
        .fold(f64::MIN, f64::max);
    let source = 0;
    let sink = tasks + agents + 1;
    let mut g = Graph::new(tasks + agents + 2);
    let mut choice_edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); tasks];
    for (t, row) in scores.iter().enumerate() {
        g.add(source, 1 + t, 1, 0.0);
        for (a, &s) in row.iter().enumerate().take(agents) {
            if s.is_finite() {
                let e = g.add(1 + t, 1 + tasks + a, 1, top - s);
                choice_edges[t].push((e, a));
            }
        }
    }
    for (a, &c) in capacity.iter().enumerate() {
        g.add(1 + tasks + a, sink, c.min(tasks) as i64, 0.0);
    }
    let n = g.adj.len();
    let mut potential = vec![0.0f64; n];
    loop {
        let mut dist = vec![f64::INFINITY; n];
        let mut via = vec![usize::MAX; n];
        dist[source] = 0.0;
        let mut heap = BinaryHeap::from([Visit(0.0, source)]);
        while let Some(Visit(d, u)) = heap.pop() {
            if d > dist[u] {
                continue;
            }
            for &e in &g.adj[u] {
                let edge = &g.edges[e];
                if edge.cap <= 0 {
                    continue;
                }
                // Reduced costs are ≥ 0 up to rounding; clamp so Dijkstra stays valid.
                let reduced = (edge.cost + potential[u] - potential[edge.to]).max(0.0);
                let nd = d + reduced;
                if nd < dist[edge.to] - 1e-12 {
                    dist[edge.to] = nd;
                    via[edge.to] = e;
                    heap.push(Visit(nd, edge.to));
                }
            }
        }
        if !dist[sink].is_finite() {
            break;
        }
        for (p, d) in potential.iter_mut().zip(&dist) {
            if d.is_finite() {
                *p += d;
            }
        }
        // Every augmenting path carries one unit (task edges have capacity 1).
        let mut v = sink;
        while v != source {
            let e = via[v];
            g.edges[e].cap -= 1;
            g.edges[e ^ 1].cap += 1;
            v = g.edges[e ^ 1].to;
        }
    }
    choice_edges
        .iter()
        .map(|edges| {
            edges
                .iter()
                .find(|(e, _)| g.edges[*e].cap == 0)
                .map(|&(_, a)| a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn total(scores: &[Vec<f64>], pick: &[Option<usize>]) -> (usize, f64) {
        let mut n = 0;
        let mut s = 0.0;
        for (t, a) in pick.iter().enumerate() {
            if let Some(a) = a {
                n += 1;
                s += scores[t][*a];
            }
        }
        (n, s)
    }

    /// Every assignment, by brute force: (most tasks, then best score).
    fn best_by_brute_force(scores: &[Vec<f64>], capacity: &[usize]) -> (usize, f64) {
        fn go(
            t: usize,
            scores: &[Vec<f64>],
            cap: &mut Vec<usize>,
            n: usize,
            s: f64,
            best: &mut (usize, f64),
        ) {
            if t == scores.len() {
                if n > best.0 || (n == best.0 && s > best.1) {
                    *best = (n, s);
                }
                return;
            }
            go(t + 1, scores, cap, n, s, best);
            for a in 0..cap.len() {
                if cap[a] > 0 && scores[t][a].is_finite() {
                    cap[a] -= 1;
                    go(t + 1, scores, cap, n + 1, s + scores[t][a], best);
                    cap[a] += 1;
                }
            }
        }
        let mut best = (0, f64::MIN);
        go(0, scores, &mut capacity.to_vec(), 0, 0.0, &mut best);
        best
    }

    #[test]
    fn greedy_would_be_wrong_here() {
        // Greedy gives task 0 to agent 0 (0.9) and leaves task 1 with 0.1; optimal is 0.8 + 0.7.
        let scores = vec![vec![0.9, 0.8], vec![0.7, 0.1]];
        let pick = assign(&scores, &[1, 1]);
        assert_eq!(pick, vec![Some(1), Some(0)]);
    }

    proptest! {
        #[test]
        fn matches_brute_force(
            raw in proptest::collection::vec(proptest::collection::vec(prop_oneof![9 => 0f64..1.0, 1 => Just(f64::NAN)], 3), 1..6),
            capacity in proptest::collection::vec(0usize..3, 3),
        ) {
            let pick = assign(&raw, &capacity);
            let mut used = [0; 3];
            for a in pick.iter().flatten() { used[*a] += 1; }
            for (u, c) in used.iter().zip(&capacity) { prop_assert!(u <= c); }
            let (n, s) = total(&raw, &pick);
            let (bn, bs) = best_by_brute_force(&raw, &capacity);
            prop_assert_eq!(n, bn);
            prop_assert!((s - bs).abs() < 1e-9, "{} vs {}", s, bs);
        }
    }
}
