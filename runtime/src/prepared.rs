//! A loaded program: the IR, the hash its `.flowc` bytes are stored under, and its
//! expressions prepared for evaluation, once per program, on first use.
//!
//! Workflows' arenas serve the executor; an integration's arenas (its own, one per
//! action, the `notify` mapping) serve both the executor (parameter defaults, `notify`
//! arguments) and the connector performing the call, which receives them with the call
//! ([`crate::ActionCall::prepared`]). A connector that derives more from an integration
//! (which expressions read what, decoding plans) keeps it in the integration's
//! [`PreparedIntegration::derived`] slot, so it too is made once per loaded program and
//! dropped with it.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use flow_ir::artefact::Artefact;
use flow_ir::program::{Integration, IntegrationId, Program, WorkflowId};

/// A program ready to run. Shared by every run of it (`Arc`).
pub struct Prepared {
    pub program: Arc<Program>,
    /// The SHA-256 of the `.flowc` payload, hex: the program's key in the run store.
    pub hash: String,
    workflows: Vec<OnceLock<Arc<flow_expr::Program>>>,
    integrations: Vec<OnceLock<Arc<PreparedIntegration>>>,
}

impl Prepared {
    /// Wraps a decoded or freshly encoded artefact (its bytes are the store's business).
    pub fn new(program: impl Into<Arc<Program>>, hash: String) -> Prepared {
        let program = program.into();
        Prepared {
            workflows: program.workflows.iter().map(|_| OnceLock::new()).collect(),
            integrations: program
                .integrations
                .iter()
                .map(|_| OnceLock::new())
                .collect(),
            program,
            hash,
        }
    }

    /// Encodes `program` to find its hash (for tests and tools that start from the IR).
    pub fn encode(program: Program) -> Result<Prepared, flow_ir::artefact::ArtefactError> {
        let artefact = Artefact::encode(program)?;
        let hash = artefact.hash_hex();
        Ok(Prepared::new(artefact.program, hash))
    }

    /// A workflow's expressions.
    pub fn workflow(&self, id: WorkflowId) -> Option<&Arc<flow_expr::Program>> {
        let slot = self.workflows.get(id.index())?;
        let wf = self.program.workflow(id)?;
        Some(slot.get_or_init(|| Arc::new(flow_expr::Program::new(wf.exprs.clone()))))
    }

    /// An integration's expressions.
    pub fn integration(&self, id: IntegrationId) -> Option<&Arc<PreparedIntegration>> {
        let slot = self.integrations.get(id.0 as usize)?;
        let integ = self.program.integration(id)?;
        Some(slot.get_or_init(|| Arc::new(PreparedIntegration::new(integ))))
    }
}

/// One integration's arenas, prepared.
pub struct PreparedIntegration {
    /// The integration's own arena: settings, base URL, auth, headers, health probe.
    pub exprs: Arc<flow_expr::Program>,
    /// One per action, in declaration order (parameter defaults, request clauses).
    pub actions: Vec<Arc<flow_expr::Program>>,
    /// The `notify` mapping's arena.
    pub notify: Option<Arc<flow_expr::Program>>,
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl PreparedIntegration {
    /// Prepares an integration on its own (for probes and tools outside a run).
    pub fn new(integ: &Integration) -> PreparedIntegration {
        PreparedIntegration {
            exprs: Arc::new(flow_expr::Program::new(integ.exprs.clone())),
            actions: integ
                .actions
                .iter()
                .map(|a| Arc::new(flow_expr::Program::new(a.exprs.clone())))
                .collect(),
            notify: integ
                .notify
                .as_ref()
                .map(|n| Arc::new(flow_expr::Program::new(n.exprs.clone()))),
            derived: OnceLock::new(),
        }
    }

    /// What a connector derives from this integration, made by `make` on first use. The
    /// slot holds one type: `None` when another connector filled it with something else.
    pub fn derived<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.derived
            .get_or_init(|| Box::new(make()))
            .downcast_ref::<T>()
    }
}
