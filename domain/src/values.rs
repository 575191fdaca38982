//! Value objects: validated on construction, so a value that exists is a valid value.

mod email;
mod phone;
mod retry_policy;
mod role;

pub use email::Email;
pub use phone::PhoneNumber;
pub use retry_policy::RetryPolicy;
pub use role::Role;
