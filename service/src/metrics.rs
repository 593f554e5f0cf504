//! A Prometheus registry per service, every metric under the service's namespace, rendered as
//! the text format (`promtool check metrics` passes on both services' pages).

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::Error;

/// The content type of a rendered page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry whose metrics are all named `<namespace>_…` (`keyward_keydir`, `keyward_component`).
#[derive(Debug, Clone)]
pub struct ServiceRegistry {
    registry: Registry,
}

impl ServiceRegistry {
    /// An empty registry for `namespace`.
    pub fn new(namespace: &str) -> Result<Self, Error> {
        Ok(Self { registry: Registry::new_custom(Some(namespace.to_owned()), None)? })
    }

    /// Registers `metric` and gives it back (a clone shares the same values).
    pub fn register<T: Collector + Clone + 'static>(&self, metric: T) -> Result<T, Error> {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// Every metric, in the text format.
    pub fn render(&self) -> Result<String, Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| Error::Metrics(prometheus::Error::Msg(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounter, Opts};

    #[test]
    fn names_carry_the_namespace_and_a_name_registers_once() {
        let registry = ServiceRegistry::new("keyward_test").expect("registry");
        let counter = registry.register(IntCounter::with_opts(Opts::new("things_total", "Things.")).expect("counter"));
        counter.expect("registered").inc_by(3);
        let page = registry.render().expect("renders");
        assert!(page.contains("# TYPE keyward_test_things_total counter"), "{page}");
        assert!(page.lines().any(|l| l == "keyward_test_things_total 3"), "{page}");
        let again = IntCounter::with_opts(Opts::new("things_total", "Things.")).expect("counter");
        assert!(registry.register(again).is_err(), "a second metric of the same name is refused");
    }
}
