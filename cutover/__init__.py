"""cutover"""
