pub mod cos;
