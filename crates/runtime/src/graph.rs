//! `weir graph`: the actor graph as text, as DOT, and as the data the dashboard draws.

use std::fmt::Write;

use serde::Serialize;
use weir_checkpoint::Trigger;

use crate::spec::{PipelineSpec, Upstream};

/// The pipeline's stages and edges: what `weir graph --format dot` renders and the
/// dashboard draws (`/api/graph`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphView {
    /// The pipeline's name.
    pub pipeline: String,
    /// The trigger, as `weir graph` prints it.
    pub trigger: String,
    /// Sources, then operators in an order where each follows its inputs, then sinks.
    pub nodes: Vec<GraphNode>,
    /// Every data edge, from producer to consumer.
    pub edges: Vec<GraphEdge>,
}

/// One stage of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    /// The stage's name in the pipeline file (`operators.by_shop`).
    pub id: String,
    /// `source`, `operator` or `sink`.
    pub kind: &'static str,
    /// The component type (`csv`, `aggregate`, `parquet`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// What the stage does, as `weir graph` describes it.
    pub detail: String,
}

/// One data edge of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// The producing stage.
    pub from: String,
    /// The consuming stage.
    pub to: String,
    /// The edge carries the rows a source rejected (its `bad_records_path`).
    pub bad_records: bool,
}

impl GraphView {
    /// The graph in Graphviz's DOT language, left to right, sources as ellipses, operators as
    /// boxes, sinks as folders.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph {} {{\n  rankdir=LR;\n  label={};\n  node [fontname=\"Helvetica\", fontsize=11];\n",
            dot_quote(&self.pipeline),
            dot_quote(&format!("{} (trigger: {})", self.pipeline, self.trigger))
        );
        for node in &self.nodes {
            let shape = match node.kind {
                "source" => "ellipse",
                "operator" => "box",
                _ => "folder",
            };
            let _ = writeln!(
                out,
                "  {} [shape={shape}, label={}];",
                dot_quote(&node.id),
                dot_quote(&format!(
                    "{}\n[{}] {}",
                    node.id, node.type_name, node.detail
                ))
            );
        }
        for edge in &self.edges {
            let style = match edge.bad_records {
                true => " [style=dashed, label=\"bad records\"]",
                false => "",
            };
            let _ = writeln!(
                out,
                "  {} -> {}{style};",
                dot_quote(&edge.from),
                dot_quote(&edge.to)
            );
        }
        out.push_str("}\n");
        out
    }
}

/// A DOT string literal: quotes and backslashes escaped, line breaks as DOT's `\n`.
fn dot_quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

impl PipelineSpec {
    /// The stages and edges, for DOT and the dashboard.
    pub fn graph(&self) -> GraphView {
        let node = |kind: &'static str, name: &str, type_name: &str, detail: String| GraphNode {
            id: format!("{kind}s.{name}"),
            kind,
            type_name: type_name.to_string(),
            detail,
        };
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for s in &self.sources {
            let detail = s.spec.describe() + &watermark_text(s.watermark.as_ref());
            nodes.push(node("source", &s.name, &s.type_name, detail));
        }
        for op in self.operator_order.iter().map(|&i| &self.operators[i]) {
            let detail = op.spec.describe() + &watermark_text(op.watermark.as_ref());
            let op_node = node("operator", &op.name, &op.type_name, detail);
            edges.extend(op.inputs.iter().map(|&up| self.edge(up, &op_node.id)));
            nodes.push(op_node);
        }
        for sink in &self.sinks {
            let detail = format!("{} ({})", sink.spec.describe(), sink.mode);
            let sink_node = node("sink", &sink.name, &sink.type_name, detail);
            edges.extend(sink.inputs.iter().map(|&up| self.edge(up, &sink_node.id)));
            nodes.push(sink_node);
        }
        GraphView {
            pipeline: self.name.clone(),
            trigger: self.trigger_text(),
            nodes,
            edges,
        }
    }

    /// The name of the stage `upstream` stands for (`sources.sales`).
    pub(crate) fn stage_name(&self, upstream: Upstream) -> String {
        match upstream {
            Upstream::Source(i) | Upstream::BadRecords(i) => {
                format!("sources.{}", self.sources[i].name)
            }
            Upstream::Operator(i) => format!("operators.{}", self.operators[i].name),
        }
    }

    fn edge(&self, upstream: Upstream, to: &str) -> GraphEdge {
        GraphEdge {
            from: self.stage_name(upstream),
            to: to.to_string(),
            bad_records: matches!(upstream, Upstream::BadRecords(_)),
        }
    }

    fn trigger_text(&self) -> String {
        match self.trigger {
            Trigger::Continuous { interval } => {
                format!("continuous, checkpoint every {interval:?}")
            }
            Trigger::ProcessingTime { interval } => format!("processing_time every {interval:?}"),
            Trigger::Once => "once".into(),
            Trigger::AvailableNow => "available_now".into(),
        }
    }

    /// The stages, their edges and their arbiters, as indented text: every source with the
    /// stages that read it beneath it.
    pub fn graph_text(&self) -> String {
        let trigger = self.trigger_text();
        let stages = self.sources.len() + self.operators.len() + self.sinks.len();
        let mut out = format!(
            "pipeline {} (trigger: {trigger})\n{stages} stage actors, each on its own arbiter, and a coordinator\n",
            self.name
        );
        for (i, source) in self.sources.iter().enumerate() {
            let _ = writeln!(
                out,
                "source {} [{}] {}{}",
                source.name,
                source.type_name,
                source.spec.describe(),
                watermark_text(source.watermark.as_ref())
            );
            self.write_consumers(&mut out, Upstream::Source(i), 1);
            self.write_consumers(&mut out, Upstream::BadRecords(i), 1);
        }
        out
    }

    fn write_consumers(&self, out: &mut String, upstream: Upstream, depth: usize) {
        let indent = "    ".repeat(depth);
        for (j, op) in self.operators.iter().enumerate() {
            if op.inputs.contains(&upstream) {
                let _ = writeln!(
                    out,
                    "{indent}-> operator {} [{}] {}{}",
                    op.name,
                    op.type_name,
                    op.spec.describe(),
                    watermark_text(op.watermark.as_ref())
                );
                self.write_consumers(out, Upstream::Operator(j), depth + 1);
            }
        }
        for sink in self.sinks.iter().filter(|s| s.inputs.contains(&upstream)) {
            let _ = writeln!(
                out,
                "{indent}-> sink {} [{}] {} ({})",
                sink.name,
                sink.type_name,
                sink.spec.describe(),
                sink.mode
            );
        }
    }
}

/// `, watermark(ts, 600s)` after a stage that computes one.
fn watermark_text(watermark: Option<&crate::spec::WatermarkSpec>) -> String {
    watermark.map_or(String::new(), |w| format!(", {}", w.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_strings_escape_quotes_backslashes_and_line_breaks() {
        assert_eq!(
            dot_quote("Shop = \"a\\b\"\nnext"),
            "\"Shop = \\\"a\\\\b\\\"\\nnext\""
        );
    }
}
