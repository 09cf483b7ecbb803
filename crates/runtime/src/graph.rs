//! `weir graph`: the actor graph as text.

use std::fmt::Write;

use weir_checkpoint::Trigger;

use crate::spec::{PipelineSpec, Upstream};

impl PipelineSpec {
    /// The stages, their edges and their arbiters, as indented text: every source with the
    /// stages that read it beneath it.
    pub fn graph_text(&self) -> String {
        let trigger = match self.trigger {
            Trigger::Continuous { interval } => {
                format!("continuous, checkpoint every {interval:?}")
            }
            Trigger::ProcessingTime { interval } => format!("processing_time every {interval:?}"),
            Trigger::Once => "once".into(),
            Trigger::AvailableNow => "available_now".into(),
        };
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
