//! The cleaner of a source's input: after every sink has committed an epoch, the input that
//! epoch finished is no longer needed, and the source's [`InputCleaner`] deletes or archives
//! it. The coordinator commits its sinks one after another and this actor last, so nothing
//! is cleaned before the output that holds its rows is visible.

use actix::{Actor, Context, Handler};
use weir_checkpoint::Commit;
use weir_core::{Error, InputCleaner};

pub(crate) struct CleanerActor {
    cleaner: Box<dyn InputCleaner>,
}

impl CleanerActor {
    pub(crate) fn new(cleaner: Box<dyn InputCleaner>) -> Self {
        CleanerActor { cleaner }
    }
}

impl Actor for CleanerActor {
    type Context = Context<Self>;
}

impl Handler<Commit> for CleanerActor {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) -> Self::Result {
        // Cleaning cannot fail the epoch: its output is committed. The cleaner logs what it
        // could not do, and a restart tries again.
        self.cleaner.committed(msg.epoch);
        if msg.last {
            use actix::ActorContext;
            ctx.stop();
        }
        Ok(())
    }
}
