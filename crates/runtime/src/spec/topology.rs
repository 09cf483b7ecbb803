//! The sources' and operators' names and edges: lookups, and the one topological order
//! (with the cycle check) that validation and the running pipeline share.

use super::validate::RawComponent;
use super::*;

/// Names and edges of sources and operators, for lookups and the cycle check.
pub(super) struct Graph {
    pub(super) names: HashMap<String, Upstream>,
    /// For every operator, the operators it reads.
    pub(super) operator_inputs: Vec<Vec<usize>>,
    pub(super) operator_names: Vec<String>,
}

impl Graph {
    pub(super) fn new(
        sources: &[(String, RawComponent)],
        operators: &[(String, RawComponent)],
    ) -> Self {
        let mut names = HashMap::new();
        for (i, (name, _)) in sources.iter().enumerate() {
            names.insert(name.clone(), Upstream::Source(i));
        }
        for (i, (name, _)) in operators.iter().enumerate() {
            names.entry(name.clone()).or_insert(Upstream::Operator(i));
        }
        let operator_inputs = operators
            .iter()
            .map(|(_, c)| {
                c.inputs
                    .iter()
                    .filter_map(|n| match names.get(n) {
                        Some(Upstream::Operator(i)) => Some(*i),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        Graph {
            names,
            operator_inputs,
            operator_names: operators.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    pub(super) fn lookup(&self, name: &str) -> Option<Upstream> {
        self.names.get(name).copied()
    }

    pub(super) fn known(&self) -> String {
        let mut names: Vec<_> = self.names.keys().map(|n| format!("\"{n}\"")).collect();
        names.sort();
        names.join(", ")
    }

    /// Operators in an order where each comes after the operators it reads, or a cycle.
    pub(super) fn topological_order(&self) -> Result<Vec<usize>, Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit(
            g: &Graph,
            i: usize,
            marks: &mut [Mark],
            path: &mut Vec<usize>,
            order: &mut Vec<usize>,
        ) -> Result<(), Vec<String>> {
            match marks[i] {
                Mark::Done => return Ok(()),
                Mark::Active => {
                    let start = path.iter().position(|&p| p == i).unwrap_or(0);
                    let mut cycle: Vec<String> = path[start..]
                        .iter()
                        .map(|&p| g.operator_names[p].clone())
                        .collect();
                    cycle.push(g.operator_names[i].clone());
                    return Err(cycle);
                }
                Mark::New => {}
            }
            marks[i] = Mark::Active;
            path.push(i);
            for &input in &g.operator_inputs[i] {
                visit(g, input, marks, path, order)?;
            }
            path.pop();
            marks[i] = Mark::Done;
            order.push(i);
            Ok(())
        }
        let mut marks = vec![Mark::New; self.operator_inputs.len()];
        let mut order = Vec::new();
        for i in 0..marks.len() {
            visit(self, i, &mut marks, &mut Vec::new(), &mut order)?;
        }
        Ok(order)
    }
}
